// Mutation fuzzing of the ZFile reader: does every mutated file either read back correct bytes or
// fail with a DadiError (never another exception, hang or wrong bytes)?
// Usage: tsx bench/fuzz-zfile.ts [cases=100000] [seed=1]

import { checkZFile, zfileTargets } from '../test/zfile-fuzz.js';
import { runFuzz } from './fuzz-run.js';

await runFuzz('fuzz-zfile', 'ZFile reader mutation fuzzing', 'ZFiles', await zfileTargets(), checkZFile);
