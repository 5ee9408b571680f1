// Process entry of the daemon's client commands (`dadi run|mount|umount|ps|rm`, which bin/dadi sends
// here): the same commands as the whole CLI's, with only their own group registered. The build
// bundles this file and its static imports into one (scripts/bundle-cli.ts) because a launch pays
// for every module it loads; nothing on these commands' paths imports the rest of dadi.
import { main, newProgram } from './main.js';
import { registerRunCommands } from './run.js';

// Not awaited: the bundle is CommonJS (cached-start.ts), and main reports its own errors.
void main(process.argv.slice(2), () => {
  const program = newProgram();
  registerRunCommands(program);
  return program;
});
