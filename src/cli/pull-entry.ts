// Process entry of `dadi pull` (bin/dadi sends it here): the same command as the whole CLI's, with
// its action imported statically, so that the build bundles the pull — registry client, gRPC,
// containerd's API loader — into one file (scripts/bundle-cli.ts).
import { main, newProgram } from './main.js';
import { registerPullCommand } from './pull.js';
import { pullAction } from './pull-action.js';

await main(process.argv.slice(2), () => {
  const program = newProgram();
  registerPullCommand(program, async () => pullAction);
  return program;
});
