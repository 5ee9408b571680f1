import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testRandom } from '../../../test/seed.js';
import { decodeSegment, encodeInvalid, encodeSegment, isInvalidEntry, SEGMENT_BYTES, type Segment } from './segment.js';
import { SegmentIndex, SegmentListBuilder } from './segment-index.js';

const seg = (offset: number, length: number, moffset: number, tag = 0, zeroed = false): Segment => ({
  offset,
  length,
  moffset,
  zeroed,
  tag,
});

/** Random sorted, non-overlapping segments starting at `base`. */
const sortedSegments = (maxCount: number, base = 0) =>
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 64 }), fc.boolean()), {
      maxLength: maxCount,
    })
    .map((parts) => {
      let p = base;
      return parts.map(([gap, len, z], i) => {
        p += gap;
        const s = seg(p, len, 8 + i * 64, 0, z);
        p += len;
        return s;
      });
    });

function naiveFirstEndAfter(segs: Segment[], x: number): number {
  const i = segs.findIndex((s) => s.offset + s.length > x);
  return i < 0 ? segs.length : i;
}

describe('SegmentIndex', () => {
  it('looks up and trims like the reference (TEST(Index, lookup))', () => {
    const idx = SegmentIndex.fromSegments([seg(0, 10, 0), seg(10, 10, 50), seg(100, 10, 20)]);
    expect(idx.overlapping(5, 15)).toEqual([seg(5, 5, 5), seg(10, 5, 50)]);
    expect(idx.overlapping(16, 26)).toEqual([seg(16, 4, 56)]);
    expect(idx.overlapping(26, 36)).toEqual([]);
    expect(idx.overlapping(6, 106)).toEqual([seg(6, 4, 6), seg(10, 10, 50), seg(100, 6, 20)]);
  });

  it('keeps a zeroed mapping’s moffset on a front trim', () => {
    const idx = SegmentIndex.fromSegments([seg(0, 10, 77, 0, true)]);
    expect(idx.overlapping(4, 8)).toEqual([seg(4, 4, 77, 0, true)]);
  });

  for (const [what, count, base] of [
    ['small (int32 keys)', 60, 0],
    ['two-level (int32 keys, > 2048 entries)', 5000, 0],
    ['float64 keys (ends ≥ 2^31)', 300, 2 ** 40],
  ] as const) {
    it(`finds the first mapping with end > x: ${what}`, () => {
      fc.assert(
        fc.property(
          sortedSegments(count, base),
          fc.array(fc.integer({ min: -5, max: 400_000 }), { maxLength: 50 }),
          (segs, xs) => {
            const idx = SegmentIndex.fromSegments(segs);
            for (const x0 of [...xs, ...segs.slice(0, 20).map((s) => s.offset - base)]) {
              const x = x0 + base;
              expect(idx.firstEndAfter(x)).toBe(naiveFirstEndAfter(segs, x));
            }
            expect(idx.firstEndAfter(base + 10 ** 9)).toBe(segs.length);
          },
        ),
        { numRuns: count > 1000 ? 15 : 100 },
      );
    });
  }

  it('handles a dense index across the two-level boundary exactly', () => {
    const segs = Array.from({ length: 4099 }, (_, i) => seg(i * 3, 2, 8 + i * 2));
    const idx = SegmentIndex.fromSegments(segs);
    for (let x = -1; x < 4099 * 3 + 2; x++) expect(idx.firstEndAfter(x)).toBe(naiveFirstEndAfter(segs, x));
  });

  it('decodes on-disk entries: drops padding, resets tags unless asked', () => {
    const bytes = new Uint8Array(4 * 16);
    const v = new DataView(bytes.buffer);
    encodeSegment(v, 0, 0, 8, 8, false, 3);
    encodeInvalid(v, 16);
    encodeSegment(v, 32, 8, 8, 16, true, 1);
    encodeInvalid(v, 48);
    const idx = SegmentIndex.decode(bytes, 4);
    expect(idx.toArray()).toEqual([seg(0, 8, 8), seg(8, 8, 16, 0, true)]);
    expect(
      SegmentIndex.decode(bytes, 4, { keepTags: true })
        .toArray()
        .map((s) => s.tag),
    ).toEqual([3, 1]);
    expect(SegmentIndex.decode(idx.encode(), 2).toArray()).toEqual(idx.toArray());
    expect(idx.dataSectors()).toBe(8);
  });
});

describe('SegmentIndex.decode', () => {
  /** The decode before the one-pass one (per entry: DataView, a Segment object, a builder push), kept as the reference. */
  function previousDecode(bytes: Uint8Array, count: number, keepTags: boolean): Segment[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const b = new SegmentListBuilder(count);
    for (let i = 0; i < count; i++) {
      const pos = i * SEGMENT_BYTES;
      if (isInvalidEntry(view, pos)) continue;
      const s = decodeSegment(view, pos);
      b.push(s.offset, s.length, s.moffset, s.zeroed, keepTags ? s.tag : 0);
    }
    return b.build().toArray();
  }

  it('gives what the per-entry decode gave, on seeded random entries (padding, huge fields, unaligned bytes)', () => {
    const rnd = testRandom(47);
    const int = (below: number) => Math.floor(rnd() * below);
    for (let run = 0; run < 300; run++) {
      const count = run < 3 ? run : 1 + int(run % 25 === 0 ? 20_000 : 300);
      const shift = int(4); // 0: aligned; else the entries start 1-3 bytes into their buffer
      const bytes = new Uint8Array(count * SEGMENT_BYTES + shift).subarray(shift);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < count; i++) {
        const pos = i * SEGMENT_BYTES;
        const kind = int(10);
        if (kind === 0) encodeInvalid(view, pos);
        else if (kind === 1) {
          // Raw random words: any bit pattern the format can hold.
          for (let w = 0; w < 4; w++) view.setUint32(pos + 4 * w, int(2 ** 32), true);
        } else {
          const big = kind === 2;
          encodeSegment(
            view,
            pos,
            big ? int(2 ** 50 - 1) : int(1 << 30),
            int(1 << 14),
            big ? int(2 ** 53) : int(1 << 30),
            int(2) === 1,
            int(256),
          );
        }
      }
      for (const keepTags of [false, true]) {
        const got = SegmentIndex.decode(bytes, count, { keepTags });
        expect(got.toArray()).toEqual(previousDecode(bytes, count, keepTags));
        expect(got.length).toBe(got.offsets.length);
      }
    }
  });
});
