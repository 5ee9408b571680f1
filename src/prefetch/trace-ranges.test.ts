// The acceleration layer's blob-range annotation: the replay's plan mapped to stored blob ranges,
// its text form both ways, and a malformed or oversized value read as no hint at all.

import { describe, expect, it } from 'vitest';
import {
  blobRangesOf,
  decodeBlobRanges,
  encodeBlobRanges,
  JOIN_EARLY_MAX_GAP,
  JOIN_EARLY_MAX_GROWTH,
  joinEarlyFetches,
  MAX_BLOB_RANGE_BYTES,
  MAX_BLOB_RANGES,
} from './trace-ranges.js';

describe('blobRangesOf', () => {
  it("maps the replay plan's reads to where their blocks are stored, per layer", () => {
    // Layer 0: 4 KiB blocks stored at 1000 + block*100 (a 1000-byte tar header, 100 bytes a block).
    const span0 = (o: number, c: number) =>
      [1000 + Math.floor(o / 4096) * 100, 1000 + (Math.floor((o + c - 1) / 4096) + 1) * 100] as const;
    const span1 = (o: number, c: number) => [o, o + c] as const;
    const ranges = blobRangesOf(
      [
        { layer: 1, offset: 65536, count: 4096 },
        { layer: 0, offset: 0, count: 8192 },
      ],
      [{ span: span0 }, { span: span1 }],
    );
    // In the order of their first recorded read.
    expect(ranges).toEqual([
      { layer: 1, offset: 65536, length: 4096 },
      { layer: 0, offset: 1000, length: 200 },
    ]);
  });

  it('publishes nothing for an empty trace', () => {
    expect(blobRangesOf([], [{ span: (o, c) => [o, o + c] }])).toBeUndefined();
  });
});

describe('encodeBlobRanges / decodeBlobRanges', () => {
  it('round-trips', () => {
    const r = [
      { layer: 0, offset: 192512, length: 20480 },
      { layer: 1, offset: 0, length: 4096 },
    ];
    expect(encodeBlobRanges(r)).toBe('0:192512+20480,1:0+4096');
    expect(decodeBlobRanges(encodeBlobRanges(r), 2)).toEqual(r);
  });

  it('reads a malformed, out-of-range or oversized value as no hint', () => {
    for (const bad of [
      undefined,
      42,
      '',
      '0:1+2,',
      '0:-1+2',
      '0:1+0',
      '2:0+4096', // layer 2 of 2
      `0:0+${MAX_BLOB_RANGE_BYTES + 1}`,
      '0:1.5+2',
      Array.from({ length: MAX_BLOB_RANGES + 1 }, () => '0:0+1').join(','),
    ]) {
      expect(decodeBlobRanges(bad, 2), String(bad).slice(0, 40)).toBeUndefined();
    }
  });
});

describe('joinEarlyFetches', () => {
  // cat's traced start: a 58 MB layer, its head (128 KiB) and tail (the indexes), and the first
  // four published ranges (offsets as record-trace published them).
  const head = { offset: 0, end: 131072 };
  const tail = { offset: 58093568, end: 58278400 };
  const ranges = [
    { offset: 2048, length: 123560 },
    { offset: 57978886, length: 163269 },
    { offset: 193623, length: 18898 },
    { offset: 10198623, length: 72375 },
  ];

  it('grows the head and the tail over the ranges beside them, and leaves the others in order', () => {
    const r = joinEarlyFetches(head, tail, ranges);
    // Inside the head; 61 KiB past it; overlapping the tail from below.
    expect(r.head).toEqual({ offset: 0, end: 193623 + 18898 });
    expect(r.tail).toEqual({ offset: 57978886, end: 58278400 });
    expect(r.rest).toEqual([{ offset: 10198623, length: 72375 }]);
    // The inputs are not changed.
    expect(head).toEqual({ offset: 0, end: 131072 });
  });

  it('reaches a range through another one it joined first, but never across a wider gap', () => {
    // The second is out of the head's reach until the first has joined it.
    const near = [
      { offset: 131072 + 60000 + 10000 + 60000, length: 100 },
      { offset: 131072 + 60000, length: 10000 },
      { offset: 1 << 20, length: 100 },
    ];
    const r = joinEarlyFetches(head, undefined, near);
    expect(r.head.end).toBe(131072 + 130000 + 100);
    expect(r.rest).toEqual([{ offset: 1 << 20, length: 100 }]);
    expect(r.tail).toBeUndefined();
  });

  it('grows the head and the tail by JOIN_EARLY_MAX_GROWTH at most: a large range goes on its own', () => {
    const big = [{ offset: 131072, length: JOIN_EARLY_MAX_GROWTH + 1 }];
    expect(joinEarlyFetches(head, tail, big).rest).toEqual(big);
    expect(joinEarlyFetches(head, tail, big, JOIN_EARLY_MAX_GAP, 2 << 20).head.end).toBe(
      131072 + JOIN_EARLY_MAX_GROWTH + 1,
    );
    const below = [{ offset: tail.offset - JOIN_EARLY_MAX_GROWTH - 1, length: JOIN_EARLY_MAX_GROWTH + 1 }];
    expect(joinEarlyFetches(head, tail, below).rest).toEqual(below);
    const fits = [{ offset: tail.offset - JOIN_EARLY_MAX_GROWTH, length: JOIN_EARLY_MAX_GROWTH }];
    expect(joinEarlyFetches(head, tail, fits)).toMatchObject({ tail: { offset: fits[0]!.offset }, rest: [] });
  });

  it('joins nothing without ranges, and a range both could take goes to the head only', () => {
    expect(joinEarlyFetches(head, tail, [])).toEqual({ head, tail, rest: [] });
    const small = { offset: 0, end: 4096 };
    const r = joinEarlyFetches(small, { offset: 8192, end: 12288 }, [{ offset: 4096, length: 4096 }]);
    expect(r.head).toEqual({ offset: 0, end: 8192 });
    expect(r.tail).toEqual({ offset: 8192, end: 12288 });
    expect(r.rest).toEqual([]);
  });
});
