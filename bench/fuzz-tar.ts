// Mutation fuzzing of tar detection (and the ZFile inside): does every mutated tar-wrapped layer
// either read back correct bytes or fail with a DadiError (never another exception or wrong bytes)?
// Usage: tsx bench/fuzz-tar.ts [cases=100000] [seed=1]

import { MemoryFile } from '../src/blockfile/memory.js';
import { mutate, rng } from '../test/mutate.js';
import { checkTar, tarTargets } from '../test/tar-fuzz.js';
import { report } from './report.js';

const cases = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);

const targets = await tarTargets();
const rand = rng(seed);
const tally = { ok: 0, rejected: 0, crashes: 0 };
const crashes: string[] = [];
const t0 = performance.now();
for (let i = 0; i < cases; i++) {
  const t = targets[i % targets.length]!;
  const m = mutate(t.bytes, rand, t.fields, t.hot);
  try {
    tally[await checkTar(new MemoryFile(m.bytes), t.data, m.steps.length === 1, i)]++;
  } catch (e) {
    tally.crashes++;
    if (crashes.length < 20) crashes.push(`case ${i} (${t.label}: ${m.steps.join(', ')}): ${(e as Error).stack}`);
  }
}
const s = (performance.now() - t0) / 1000;
for (const c of crashes) console.error(c);
report('fuzz-tar', 'Tar wrapper mutation fuzzing', [
  {
    case: `${cases} mutated tar-wrapped ZFiles (${targets.map((t) => t.label).join(', ')})`,
    unit: 'cases/s',
    value: cases / s,
    extra: { cases, ...tally, seed, seconds: +s.toFixed(1) },
  },
]);
if (tally.crashes > 0) process.exitCode = 1;
