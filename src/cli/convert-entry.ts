// Process entry of `dadi convert` and `dadi digests` (bin/dadi sends them here): the same commands
// as the whole CLI's, with only their group registered. The build bundles this file and its static
// imports into one (scripts/bundle-cli.ts): Node loads ~100 modules of tsc output one by one in
// ~0.2 s of the main thread's time before a conversion can start, one file in about half of that.
// The worker threads start first (convert-prestart.ts is imported first, so its code runs before
// the converter's modules are evaluated), as main.ts does for the whole CLI.
import './convert-prestart.js';
import { registerConvertCommands } from './convert.js';
import { main, newProgram } from './main.js';

await main(process.argv.slice(2), () => {
  const program = newProgram();
  registerConvertCommands(program);
  return program;
});
// The command has finished: its output is published (renamed into place) and its result printed.
// Left alone, the exit would wait ~40-90 ms for the idle worker threads to shut down; nothing is
// left to do but let stdout and stderr drain, so exit once they have.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((done) => s.write('', () => done()))));
process.exit();
