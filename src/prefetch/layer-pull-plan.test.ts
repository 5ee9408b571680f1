import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunksOf, RateLimiter, startDelayMs } from './layer-pull-plan.js';

describe('background pull timing', () => {
  it('waits delay plus a random part below delayExtra', () => {
    expect(startDelayMs({ delay: 2, delayExtra: 3 }, () => 0)).toBe(2000);
    expect(startDelayMs({ delay: 2, delayExtra: 3 }, () => 0.5)).toBe(3500);
    expect(startDelayMs({ delay: 0, delayExtra: 0 }, () => 0.9)).toBe(0);
  });
});

describe('chunksOf', () => {
  it('covers the blob exactly, in order, each chunk at most chunkSize', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 12, max: 20 }), (size, log2) => {
        const cs = 2 ** log2;
        const chunks = chunksOf(size, cs);
        let at = 0;
        for (const c of chunks) {
          expect(c.offset).toBe(at);
          expect(c.length).toBeGreaterThan(0);
          expect(c.length).toBeLessThanOrEqual(cs);
          at += c.length;
        }
        expect(at).toBe(size);
        expect(chunks.length).toBe(Math.ceil(size / cs));
      }),
    );
  });
});

describe('RateLimiter', () => {
  it('any prefix of a busy schedule carries at most rate·t plus one chunk', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 1 << 20 }), { minLength: 1, maxLength: 200 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 200, maxLength: 200 }),
        (sizes, gaps) => {
          let t = 1000;
          const rate = 10e6;
          const limiter = new RateLimiter(rate, () => t);
          const start = t;
          const sent: Array<[number, number]> = [];
          sizes.forEach((n, i) => {
            t += gaps[i]!; // the caller's own work between chunks
            t += limiter.claim(n); // the wait, on the injected clock
            sent.push([t, n]);
          });
          let bytes = 0;
          for (const [at, n] of sent) {
            bytes += n;
            // Bytes sent by `at` (this chunk included) ≤ rate × elapsed + the largest chunk.
            expect(bytes).toBeLessThanOrEqual((rate * (at - start)) / 1000 + Math.max(...sizes) + 1e-6);
          }
        },
      ),
    );
  });

  it('paces back-to-back chunks at the rate, and an idle spell builds no burst', () => {
    let t = 0;
    const limiter = new RateLimiter(1e6, () => t); // 1 MB/s
    expect(limiter.claim(250_000)).toBe(0);
    expect(limiter.claim(250_000)).toBe(250);
    expect(limiter.claim(250_000)).toBe(500);
    t = 10_000;
    expect(limiter.claim(250_000)).toBe(0);
    expect(limiter.claim(250_000)).toBe(250);
    expect(() => new RateLimiter(0, () => 0)).toThrow(/expected > 0/);
  });
});
