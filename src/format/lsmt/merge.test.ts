import { describe, expect, it } from 'vitest';
import { coalesceSegments } from './commit.js';
import { mergeIndexes } from './merge.js';
import type { Segment } from './segment.js';
import { SegmentIndex } from './segment-index.js';

type T = [number, number, number, number?];
const idx = (ms: T[]) =>
  SegmentIndex.fromSegments(
    ms.map(([o, l, m, t]) => ({ offset: o, length: l, moffset: m, zeroed: false, tag: t ?? 0 })),
  );
const tuples = (segs: Iterable<Segment>) => [...segs].map((s) => [s.offset, s.length, s.moffset, s.tag]);

// TEST(Index, merge) in overlaybd's lsmt/test/test.cpp.
const index0 = idx([
  [5, 5, 0],
  [10, 10, 50],
  [100, 10, 20],
]);
const idx1 = idx([
  [0, 1, 7],
  [2, 4, 5],
  [15, 10, 22],
  [30, 15, 89],
  [87, 50, 32],
  [150, 10, 84],
]);
const idx2 = idx([
  [1, 3, 134],
  [8, 4, 873],
  [18, 72, 320],
  [100, 100, 4893],
  [1000, 1000, 39823],
]);
const idx3 = idx([
  [23, 10, 0],
  [65, 10, 50],
  [89, 10, 20],
  [230, 43, 432],
  [1999, 31, 2393],
]);

/** The reference's combo: the RW index (tag = #RO) over the merged RO indexes; lookup [0, 10000). */
function combo(ro: SegmentIndex[]): number[][] {
  const merged = mergeIndexes(ro);
  const rw = SegmentIndex.fromSegments(index0.toArray().map((s) => ({ ...s, tag: ro.length })));
  return tuples(mergeIndexes([rw, merged], { tags: ['keep', 'keep'] }).overlapping(0, 10000));
}

describe('mergeIndexes', () => {
  it('reproduces the spec vector: index0 + idx1 + idx2', () => {
    const want = [
      [0, 1, 7, 0],
      [1, 1, 134, 1],
      [2, 3, 5, 0],
      [5, 5, 0, 2],
      [10, 10, 50, 2],
      [20, 5, 27, 0],
      [25, 5, 327, 1],
      [30, 15, 89, 0],
      [45, 42, 347, 1],
      [87, 13, 32, 0],
      [100, 10, 20, 2],
      [110, 27, 55, 0],
      [137, 13, 4930, 1],
      [150, 10, 84, 0],
      [160, 40, 4953, 1],
      [1000, 1000, 39823, 1],
    ];
    expect(combo([idx1, idx2])).toEqual(want);
    // The same with one merge and explicit tags per level.
    expect(tuples(mergeIndexes([index0, idx1, idx2], { tags: [2, 0, 1] }))).toEqual(want);
  });

  it('reproduces the 2- and 4-index vectors of the same test', () => {
    expect(combo([idx1])).toEqual([
      [0, 1, 7, 0],
      [2, 3, 5, 0],
      [5, 5, 0, 1],
      [10, 10, 50, 1],
      [20, 5, 27, 0],
      [30, 15, 89, 0],
      [87, 13, 32, 0],
      [100, 10, 20, 1],
      [110, 27, 55, 0],
      [150, 10, 84, 0],
    ]);
    expect(combo([idx1, idx2, idx3])).toEqual([
      [0, 1, 7, 0],
      [1, 1, 134, 1],
      [2, 3, 5, 0],
      [5, 5, 0, 3],
      [10, 10, 50, 3],
      [20, 5, 27, 0],
      [25, 5, 327, 1],
      [30, 15, 89, 0],
      [45, 42, 347, 1],
      [87, 13, 32, 0],
      [100, 10, 20, 3],
      [110, 27, 55, 0],
      [137, 13, 4930, 1],
      [150, 10, 84, 0],
      [160, 40, 4953, 1],
      [230, 43, 432, 2],
      [1000, 1000, 39823, 1],
      [2000, 30, 2394, 2],
    ]);
  });

  it('keeps upper zeroed mappings (they mask lower data)', () => {
    const upper = SegmentIndex.fromSegments([{ offset: 4, length: 4, moffset: 8, zeroed: true, tag: 0 }]);
    const lower = idx([[0, 16, 100]]);
    expect(mergeIndexes([upper, lower]).toArray()).toEqual([
      { offset: 0, length: 4, moffset: 100, zeroed: false, tag: 1 },
      { offset: 4, length: 4, moffset: 8, zeroed: true, tag: 0 },
      { offset: 8, length: 8, moffset: 108, zeroed: false, tag: 1 },
    ]);
  });

  it('rejects more than 255 indexes and oversized results (TEST(Index, reject_oversized_merge))', () => {
    expect(() => mergeIndexes(Array.from({ length: 256 }, () => SegmentIndex.empty()))).toThrow(/255/);
    const a = idx([
      [0, 1, 0],
      [2, 1, 2],
    ]);
    const b = idx([
      [1, 1, 1],
      [3, 1, 3],
    ]);
    expect(() => mergeIndexes([a, b], { maxEntries: 3 })).toThrow(/exceeds 3 entries/);
    expect(mergeIndexes([a, b], { maxEntries: 4 }).length).toBe(4);
  });
});

describe('coalesceSegments (compress_raw_index)', () => {
  const c = (ms: T[]) => tuples(coalesceSegments(idx(ms)));
  it('reproduces TEST(Index, compress)', () => {
    expect(
      c([
        [5, 5, 0],
        [10, 10, 5],
        [100, 10, 20],
      ]),
    ).toEqual([
      [5, 15, 0, 0],
      [100, 10, 20, 0],
    ]);
    expect(
      c([
        [5, 5, 0],
        [10, 10, 5],
        [20, 10, 15],
        [100, 10, 20],
      ]),
    ).toEqual([
      [5, 25, 0, 0],
      [100, 10, 20, 0],
    ]);
    expect(
      c([
        [5, 5, 0],
        [10, 10, 5],
        [20, 10, 15, 1],
        [100, 10, 20],
      ]),
    ).toEqual([
      [5, 15, 0, 0],
      [20, 10, 15, 1],
      [100, 10, 20, 0],
    ]);
    expect(
      c([
        [5, 5, 0],
        [10, 10, 5, 3],
        [20, 10, 15, 3],
        [30, 10, 20],
      ]),
    ).toEqual([
      [5, 5, 0, 0],
      [10, 20, 5, 3],
      [30, 10, 20, 0],
    ]);
  });

  it('cuts runs so that the summed length stays below 16383', () => {
    const pieces: T[] = Array.from({ length: 300 }, (_, i) => [i * 64, 64, 8 + i * 64]);
    expect(c(pieces)).toEqual([
      [0, 16320, 8, 0],
      [16320, 2880, 16328, 0],
    ]);
  });
});
