// The acceleration layer's blob-range annotation: the replay's plan mapped to stored blob ranges,
// its text form both ways, and a malformed or oversized value read as no hint at all.

import { describe, expect, it } from 'vitest';
import {
  blobRangesOf,
  decodeBlobRanges,
  encodeBlobRanges,
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
