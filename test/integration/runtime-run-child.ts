// Child process for the SIGINT test: runs one container with --rm and prints the result as JSON.
//   node --import tsx runtime-run-child.ts STATE LAYER NAME CMD...
import { runContainer } from '../../src/runtime/index.js';

const [state, layer, name, ...cmd] = process.argv.slice(2);
const r = await runContainer({ layers: [layer!], cmd, name, rm: true, stateDir: state, killGraceMs: 500 });
console.log(JSON.stringify({ exitCode: r.exitCode, interrupted: r.interrupted }));
