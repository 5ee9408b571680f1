import { describe, expect, it } from 'vitest';
import { bounded } from './bounded.js';

/** A promise with its resolve function, to finish jobs in an order the test picks. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

describe('bounded', () => {
  it('runs at most `limit` at once, starts in item order, and keeps results in item order', async () => {
    const gates = Array.from({ length: 6 }, gate);
    const started: number[] = [];
    let running = 0;
    let peak = 0;
    const results = bounded([10, 11, 12, 13, 14, 15], 2, async (x, i) => {
      started.push(i);
      running++;
      peak = Math.max(peak, running);
      await gates[i]!.promise;
      running--;
      return x * 2;
    });
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1]);
    // Finish out of order: the free slot goes to the next item in line.
    gates[1]!.open();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const i of [0, 3, 2, 5, 4]) gates[i]!.open();
    expect(await Promise.all(results)).toEqual([20, 22, 24, 26, 28, 30]);
    expect(peak).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a failing job rejects its own promise and frees its slot', async () => {
    const results = bounded([1, 2, 3], 1, async (x) => {
      if (x === 2) throw new Error('two');
      return x;
    });
    const settled = await Promise.allSettled(results);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason.message).toBe('two');
  });
});
