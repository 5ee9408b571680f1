// The randomness the P2P logic draws from, always injected: the root passes a source seeded from the
// OS, tests and the scale simulator pass a seeded one so every run replays. No module in src/p2p
// calls Math.random or reads the clock.

/** A source of floats in [0, 1). */
export type Random = () => number;

/** A small fast seeded PRNG (mulberry32): the same seed gives the same sequence on every platform. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One element of a non-empty list, uniformly. */
export function pick<T>(items: readonly T[], random: Random): T {
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))]!;
}
