// The loop shared by the mutation fuzzers: mutate each target in turn, classify every case with the
// parser's checker (ok / rejected with a DadiError), count anything else as a crash, and report.

import { MemoryFile } from '../src/blockfile/memory.js';
import { type Field, mutate, rng } from '../test/mutate.js';
import { report } from './report.js';

export type Verdict = 'ok' | 'rejected';

export interface FuzzTarget {
  label: string;
  /** What reading the file must give back. */
  data: Uint8Array;
  /** The file to mutate, its known fields and the regions worth mutating most. */
  bytes: Uint8Array;
  fields: Field[];
  hot: { offset: number; length: number }[];
}

export async function runFuzz(
  name: string,
  title: string,
  what: string,
  targets: FuzzTarget[],
  check: (file: MemoryFile, data: Uint8Array, singleStep: boolean, i: number) => Promise<Verdict>,
): Promise<void> {
  const cases = Number(process.argv[2] ?? 100_000);
  const seed = Number(process.argv[3] ?? 1);
  const rand = rng(seed);
  const tally = { ok: 0, rejected: 0, crashes: 0 };
  const crashes: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < cases; i++) {
    const t = targets[i % targets.length]!;
    const m = mutate(t.bytes, rand, t.fields, t.hot);
    try {
      tally[await check(new MemoryFile(m.bytes), t.data, m.steps.length === 1, i)]++;
    } catch (e) {
      tally.crashes++;
      if (crashes.length < 20) crashes.push(`case ${i} (${t.label}: ${m.steps.join(', ')}): ${(e as Error).stack}`);
    }
  }
  const s = (performance.now() - t0) / 1000;
  for (const c of crashes) console.error(c);
  report(name, title, [
    {
      case: `${cases} mutated ${what} (${targets.map((t) => t.label).join(', ')})`,
      unit: 'cases/s',
      value: cases / s,
      extra: { cases, ...tally, seed, seconds: +s.toFixed(1) },
    },
  ]);
  if (tally.crashes > 0) process.exitCode = 1;
}
