// Mutation fuzzing of the ZFile reader: does every mutated file either read back correct bytes or
// fail with a DadiError (never another exception, hang or wrong bytes)?
// Usage: tsx bench/fuzz-zfile.ts [cases=100000] [seed=1]

import { MemoryFile } from '../src/blockfile/memory.js';
import { mutate, rng } from '../test/mutate.js';
import { checkZFile, zfileTargets } from '../test/zfile-fuzz.js';
import { report } from './report.js';

const cases = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);

const targets = await zfileTargets();
const rand = rng(seed);
const tally = { ok: 0, rejected: 0, crashes: 0 };
const crashes: string[] = [];
const t0 = performance.now();
for (let i = 0; i < cases; i++) {
  const t = targets[i % targets.length]!;
  const m = mutate(t.bytes, rand, t.fields, t.hot);
  try {
    tally[await checkZFile(new MemoryFile(m.bytes), t.data, m.steps.length === 1, i)]++;
  } catch (e) {
    tally.crashes++;
    if (crashes.length < 20) crashes.push(`case ${i} (${t.label}: ${m.steps.join(', ')}): ${(e as Error).stack}`);
  }
}
const s = (performance.now() - t0) / 1000;
for (const c of crashes) console.error(c);
report('fuzz-zfile', 'ZFile reader mutation fuzzing', [
  {
    case: `${cases} mutated ZFiles (${targets.map((t) => t.label).join(', ')})`,
    unit: 'cases/s',
    value: cases / s,
    extra: { cases, ...tally, seed, seconds: +s.toFixed(1) },
  },
]);
if (tally.crashes > 0) process.exitCode = 1;
