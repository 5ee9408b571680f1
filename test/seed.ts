// The one seed behind every randomised test: fast-check's global seed (set in test/setup.ts) and
// the PRNG streams tests and their helpers draw from. Fixed, so any failure replays; set
// DADI_TEST_SEED=N to explore other runs (a failing test prints the seed it ran with).

import { rng } from './mutate.js';

function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`DADI_TEST_SEED must be an integer, got ${JSON.stringify(text)}`);
  return n | 0;
}

/** The seed of this run. */
export const TEST_SEED = parseSeed(process.env.DADI_TEST_SEED) ?? 0x0dad1;

/** A seeded PRNG in [0, 1); `stream` keeps independent uses of one test apart. */
export function testRandom(stream = 0): () => number {
  return rng(TEST_SEED + stream);
}
