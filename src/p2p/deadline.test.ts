import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TransferDeadline } from './deadline.js';

describe('TransferDeadline', () => {
  it('uses the cap until a transfer was measured', () => {
    const d = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
    expect(d.deadlineMs(1 << 20)).toBe(10_000);
    expect(d.estimate()).toBeUndefined();
  });

  it('follows the measured rate with slack, between the floor and the cap', () => {
    const d = new TransferDeadline({ minMs: 1000, maxMs: 10_000, slack: 4 });
    // 1 MiB in 500 ms after a 100 ms first byte: expected 600 ms for 1 MiB, deadline 2400 ms.
    d.observe(1 << 20, 100, 600);
    expect(d.deadlineMs(1 << 20)).toBe(2400);
    expect(d.estimate()!.bytesPerSecond).toBeCloseTo((1 << 20) / 0.5, 0);
    // A fast link: the floor holds (a busy host's scheduling noise is not slowness).
    const fast = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
    fast.observe(1 << 20, 1, 5);
    expect(fast.deadlineMs(1 << 20)).toBe(1000);
    // A crawling one: the cap holds.
    const slow = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
    slow.observe(1 << 20, 100, 60_000);
    expect(slow.deadlineMs(1 << 20)).toBe(10_000);
  });

  it('hedges after the expected duration times 1.5, from 250 ms, and only before the deadline', () => {
    const d = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
    expect(d.hedgeMs(1 << 20)).toBe(250); // nothing measured: the floor (silence is what counts)
    d.observe(1 << 20, 100, 600); // expected 600 ms: hedge at 900, deadline 2400
    expect(d.hedgeMs(1 << 20)).toBe(900);
    const fast = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
    fast.observe(1 << 20, 1, 5);
    expect(fast.hedgeMs(1 << 20)).toBe(250);
    // A hedge no earlier than the deadline is none: the capped crawl, or a floor at the hedge's.
    const slow = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
    slow.observe(1 << 20, 100, 60_000);
    expect(slow.hedgeMs(1 << 20)).toBeUndefined();
    const low = new TransferDeadline({ minMs: 200, maxMs: 10_000, hedgeMinMs: 250 });
    low.observe(1 << 20, 1, 5);
    expect(low.hedgeMs(1 << 20)).toBeUndefined();
    expect(() => new TransferDeadline({ hedgeSlack: 0.5 })).toThrow(/bad options/);
    expect(() => new TransferDeadline({ hedgeMinMs: 0 })).toThrow(/bad options/);
  });

  it('moves towards new measurements and ignores nonsense', () => {
    const d = new TransferDeadline({ minMs: 10, maxMs: 100_000, slack: 1, weight: 0.5 });
    d.observe(1000, 0, 1000); // 1 ms per byte
    d.observe(1000, 0, 3000); // 3 ms per byte → average 2
    expect(d.deadlineMs(1000)).toBe(2000);
    d.observe(0, 0, 5);
    d.observe(1000, 10, 5);
    d.observe(Number.NaN, 0, 5);
    expect(d.deadlineMs(1000)).toBe(2000);
  });

  it('rejects options that make no deadline', () => {
    expect(() => new TransferDeadline({ minMs: 0 })).toThrow(/bad options/);
    expect(() => new TransferDeadline({ minMs: 2000, maxMs: 1000 })).toThrow(/bad options/);
    expect(() => new TransferDeadline({ slack: 0.5 })).toThrow(/bad options/);
  });

  it('always answers within [minMs, maxMs] (seeded)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(64 << 20), fc.nat(20_000), fc.nat(120_000)), { maxLength: 30 }),
        fc.nat(64 << 20),
        (samples, bytes) => {
          const d = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
          for (const [b, first, total] of samples) d.observe(b, first, first + total);
          const ms = d.deadlineMs(bytes);
          const hedge = d.hedgeMs(bytes);
          const hedgeOk = hedge === undefined || (hedge >= 250 && hedge < ms && Number.isInteger(hedge));
          return ms >= 1000 && ms <= 10_000 && Number.isInteger(ms) && hedgeOk;
        },
      ),
    );
  });
});
