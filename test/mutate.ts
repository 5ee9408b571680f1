// Seeded mutation of binary files, shared by the fuzz tests and the fuzz benchmarks: bit flips,
// truncation, extension, byte splats and integer fields overwritten with extreme values.
// Not a coverage-guided fuzzer.

import { seededRandom } from '../src/p2p/random.js';

/** A small fast seeded PRNG (mulberry32) returning floats in [0, 1): src/p2p/random.ts's, one copy. */
export function rng(seed: number): () => number {
  return seededRandom(seed);
}

/** An integer field to overwrite: `offset` < 0 counts from the end of the file. */
export interface Field {
  offset: number;
  size: 1 | 2 | 4 | 8;
  /** A fix-up to run after writing it (e.g. recompute a digest so deeper checks are reached). */
  fix?: (bytes: Uint8Array) => void;
}

export interface Mutated {
  bytes: Uint8Array;
  /** What was done, for failure messages. */
  steps: string[];
}

const EXTREMES = [
  0n,
  1n,
  2n,
  4n,
  5n,
  0x7fn,
  0xffn,
  0xffffn,
  0x7fffffffn,
  0xffffffffn,
  1n << 32n,
  1n << 40n,
  1n << 53n,
  1n << 63n,
  (1n << 64n) - 1n,
];

/**
 * Apply one mutation (70% of cases) or 2–4 stacked ones to a copy of `src`. `hot` lists regions
 * where bit flips are concentrated half the time (headers, indexes).
 */
export function mutate(
  src: Uint8Array,
  rand: () => number,
  fields: Field[],
  hot: { offset: number; length: number }[] = [],
): Mutated {
  let bytes = Uint8Array.from(src);
  const steps: string[] = [];
  const n = rand() < 0.7 ? 1 : 2 + Math.floor(rand() * 3);
  const pick = (k: number) => Math.floor(rand() * k);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (bytes.length === 0) break;
    if (r < 0.35) {
      let at = pick(bytes.length);
      if (hot.length && rand() < 0.5) {
        const h = hot[pick(hot.length)]!;
        const start = h.offset < 0 ? bytes.length + h.offset : h.offset;
        at = Math.min(bytes.length - 1, Math.max(0, start + pick(Math.max(1, h.length))));
      }
      const bit = pick(8);
      bytes[at]! ^= 1 << bit;
      steps.push(`flip ${at}.${bit}`);
    } else if (r < 0.5) {
      const len = rand() < 0.5 ? pick(bytes.length) : Math.max(0, bytes.length - 1 - pick(1200));
      bytes = bytes.slice(0, len);
      steps.push(`truncate ${len}`);
    } else if (r < 0.55) {
      const extra = new Uint8Array(1 + pick(2048));
      if (rand() < 0.5) for (let k = 0; k < extra.length; k++) extra[k] = pick(256);
      const grown = new Uint8Array(bytes.length + extra.length);
      grown.set(bytes);
      grown.set(extra, bytes.length);
      bytes = grown;
      steps.push(`extend ${extra.length}`);
    } else if (r < 0.65) {
      const at = pick(bytes.length);
      const len = Math.min(bytes.length - at, 1 + pick(64));
      const v = pick(3);
      for (let k = 0; k < len; k++) bytes[at + k] = v === 0 ? 0 : v === 1 ? 0xff : pick(256);
      steps.push(`splat ${at}+${len}`);
    } else if (fields.length) {
      const f = fields[pick(fields.length)]!;
      const at = f.offset < 0 ? bytes.length + f.offset : f.offset;
      if (at < 0 || at + f.size > bytes.length) continue;
      const v = rand() < 0.8 ? EXTREMES[pick(EXTREMES.length)]! : BigInt(pick(2 ** 31)) * BigInt(1 + pick(64));
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      const w = BigInt.asUintN(f.size * 8, v);
      if (f.size === 1) dv.setUint8(at, Number(w));
      else if (f.size === 2) dv.setUint16(at, Number(w), true);
      else if (f.size === 4) dv.setUint32(at, Number(w), true);
      else dv.setBigUint64(at, w, true);
      f.fix?.(bytes);
      steps.push(`field ${f.offset}/${f.size}=${v}${f.fix ? ' (fixed up)' : ''}`);
    }
  }
  return { bytes, steps };
}
