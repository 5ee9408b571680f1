import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planPrefetch, planReplay, type StoredSpan } from './trace-plan.js';

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

describe('planPrefetch', () => {
  it('joins overlapping and adjacent reads of a layer wherever they were recorded, first read first', () => {
    expect(
      planPrefetch(
        [
          { layer: 1, offset: 0, count: 100 },
          { layer: 0, offset: 8192, count: 4096 },
          { layer: 0, offset: 0, count: 4096 },
          { layer: 0, offset: 4096, count: 4096 },
          { layer: 0, offset: 100_000, count: 10 },
          { layer: 1, offset: 50, count: 100 },
        ],
        { gapShare: 0 },
      ),
    ).toEqual([
      { layer: 1, offset: 0, count: 150 },
      { layer: 0, offset: 0, count: 12288 },
      { layer: 0, offset: 100_000, count: 10 },
    ]);
  });

  it('joins the smallest gaps first, while their bytes fit the share of the stored bytes', () => {
    // 4 reads of 1000 bytes (4000 stored) with gaps of 300, 100 and 200 bytes.
    const reads = [0, 1300, 2400, 3600].map((offset) => ({ layer: 0, offset, count: 1000 }));
    const counts = (gapShare: number) => planPrefetch(reads, { gapShare }).map((r) => r.count);
    expect(counts(0)).toEqual([1000, 1000, 1000, 1000]);
    expect(counts(0.025)).toEqual([1000, 2100, 1000]); // 100 of 100 bytes
    expect(counts(0.075)).toEqual([1000, 3300]); // 100 + 200 of 300
    expect(counts(0.15)).toEqual([4600]);
    expect(planPrefetch(reads, { gapShare: 1, maxGap: 250 }).map((r) => r.count)).toEqual([1000, 3300]);
    expect(planPrefetch(reads, { gapShare: 1, maxStored: 2500 }).map((r) => r.count)).toEqual([2300, 2200]);
  });

  it('measures gaps in stored bytes when a layer is compressed', () => {
    // Layer 0 stores each 4 KiB block of its file in 100 bytes: reads of the first and the 17th
    // block need 200 stored bytes and are 1500 stored bytes apart (61440 as the file has them).
    const span: StoredSpan = (offset, count) => [
      Math.floor(offset / 4096) * 100,
      Math.floor((offset + count - 1) / 4096) * 100 + 100,
    ];
    const reads = [
      { layer: 0, offset: 0, count: 4096 },
      { layer: 0, offset: 65536, count: 4096 },
    ];
    expect(planPrefetch(reads, { spans: [span], gapShare: 7 })).toHaveLength(2); // 1400 < 1500
    expect(planPrefetch(reads, { spans: [span], gapShare: 8 })).toEqual([{ layer: 0, offset: 0, count: 69632 }]);
    expect(planPrefetch(reads, { gapShare: 7 })).toHaveLength(2); // uncompressed: 57344 < 61440
    expect(planPrefetch(reads, { gapShare: 8 })).toHaveLength(1);
  });

  it('covers every recorded read, fetching at most the share more', () => {
    const rec = fc.record({ layer: fc.nat(2), offset: fc.nat(1 << 16), count: fc.integer({ min: 0, max: 1 << 12 }) });
    const union = (rs: readonly { layer: number; offset: number; count: number }[]) => {
      let total = 0;
      for (const layer of [0, 1, 2]) {
        const list = rs.filter((r) => r.layer === layer && r.count > 0).sort((a, b) => a.offset - b.offset);
        let end = -1;
        for (const r of list) {
          total += Math.max(0, r.offset + r.count - Math.max(end, r.offset));
          end = Math.max(end, r.offset + r.count);
        }
      }
      return total;
    };
    fc.assert(
      fc.property(fc.array(rec, { maxLength: 60 }), fc.double({ min: 0, max: 0.5, noNaN: true }), (rs, share) => {
        const plan = planPrefetch(rs, { gapShare: share, maxStored: 1 << 14 });
        for (const r of rs) {
          if (r.count === 0) continue;
          const end = r.offset + r.count;
          expect(plan.some((p) => p.layer === r.layer && p.offset <= r.offset && end <= p.offset + p.count)).toBe(true);
        }
        const needed = union(rs);
        expect(union(plan) - needed).toBeLessThanOrEqual(share * needed + 1e-6);
      }),
    );
  });
});
