// Mutation fuzzing of tar detection (and the ZFile inside): does every mutated tar-wrapped layer
// either read back correct bytes or fail with a DadiError (never another exception or wrong bytes)?
// Usage: tsx bench/fuzz-tar.ts [cases=100000] [seed=1]

import { checkTar, tarTargets } from '../test/tar-fuzz.js';
import { runFuzz } from './fuzz-run.js';

await runFuzz('fuzz-tar', 'Tar wrapper mutation fuzzing', 'tar-wrapped ZFiles', await tarTargets(), checkTar);
