import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planReplay } from './trace-plan.js';

describe('planReplay', () => {
  it('merges a read that continues or overlaps the one before it on the same layer', () => {
    expect(
      planReplay([
        { layer: 0, offset: 0, count: 4096 },
        { layer: 0, offset: 4096, count: 4096 },
        { layer: 0, offset: 6000, count: 4096 },
        { layer: 1, offset: 10096, count: 10 },
        { layer: 0, offset: 10096, count: 10 },
      ]),
    ).toEqual([
      { layer: 0, offset: 0, count: 10096 },
      { layer: 1, offset: 10096, count: 10 },
      { layer: 0, offset: 10096, count: 10 },
    ]);
  });

  it('keeps recorded order, drops exact repeats and empty reads, caps merges', () => {
    expect(
      planReplay(
        [
          { layer: 0, offset: 8192, count: 4096 },
          { layer: 0, offset: 0, count: 4096 },
          { layer: 0, offset: 8192, count: 4096 },
          { layer: 0, offset: 4096, count: 0 },
          { layer: 0, offset: 4096, count: 4096 },
          { layer: 0, offset: 8192, count: 4096 },
        ],
        8192,
      ),
    ).toEqual([
      { layer: 0, offset: 8192, count: 4096 },
      { layer: 0, offset: 0, count: 8192 },
    ]);
  });

  it('covers every recorded byte and never reads more than 4 MiB at once', () => {
    const rec = fc.record({ layer: fc.nat(2), offset: fc.nat(1 << 16), count: fc.integer({ min: 1, max: 1 << 14 }) });
    fc.assert(
      fc.property(fc.array(rec, { maxLength: 60 }), (rs) => {
        const plan = planReplay(rs, 1 << 15);
        for (const p of plan) expect(p.count).toBeLessThanOrEqual(1 << 15);
        for (const r of rs) {
          // every byte of r lies in some planned read of its layer
          for (const at of [r.offset, r.offset + r.count - 1]) {
            expect(plan.some((p) => p.layer === r.layer && at >= p.offset && at < p.offset + p.count)).toBe(true);
          }
        }
      }),
    );
  });
});
