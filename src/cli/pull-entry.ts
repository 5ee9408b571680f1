// Process entry of `dadi pull` (bin/dadi sends it here): the same command as the whole CLI's, with
// its action imported statically, so that the build bundles it into one small file
// (scripts/bundle-cli.ts): the request to the snapshotter needs node's built-ins only. The
// in-process pull (registry client, gRPC) stays a dynamic import, loaded only when no snapshotter answers.
import { main, newProgram } from './main.js';
import { registerPullCommand } from './pull.js';
import { pullRemoteAction } from './pull-remote.js';

let bySnapshotter = false;
// Not awaited: the bundle is CommonJS (cached-start.ts), and main reports its own errors.
void main(process.argv.slice(2), () => {
  const program = newProgram();
  registerPullCommand(program, async () => async (ref, o) => {
    bySnapshotter = (await pullRemoteAction(ref, o)) === 'snapshotter';
  });
  return program;
}).then(() => {
  // The snapshotter's answer is printed (stdout and stderr write synchronously on Linux): exit now
  // instead of when node has wound down on its own, 2-8 ms later (its threads and handles), as a
  // container start waits for this process to end. The pull run here leaves work after its answer
  // (its lease's end) and exits as node does.
  if (bySnapshotter) process.exit();
});
