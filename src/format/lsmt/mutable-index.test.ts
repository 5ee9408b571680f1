import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MutableIndex } from './mutable-index.js';
import type { Segment } from './segment.js';

const seg = (offset: number, length: number, moffset: number, zeroed = false, tag = 0): Segment => ({
  offset,
  length,
  moffset,
  zeroed,
  tag,
});

describe('MutableIndex', () => {
  it('resolves overlaps like the reference (TEST(Index0, insert))', () => {
    const idx = new MutableIndex();
    for (const s of [
      seg(0, 20, 0),
      seg(10, 15, 50),
      seg(30, 100, 20),
      seg(5, 10, 3),
      seg(40, 10, 123),
      seg(200, 10, 2133),
      seg(150, 100, 21),
    ]) {
      idx.insert(s);
    }
    expect(idx.toArray()).toEqual([
      seg(0, 5, 0),
      seg(5, 10, 3),
      seg(15, 10, 55),
      seg(30, 10, 20),
      seg(40, 10, 123),
      seg(50, 80, 40),
      seg(150, 100, 21),
    ]);
    expect(idx.dataSectors()).toBe(5 + 10 + 10 + 10 + 10 + 80 + 100);
  });

  it('splits a mapping around a write inside it; zeroed pieces keep their moffset', () => {
    const idx = new MutableIndex();
    idx.insert(seg(0, 100, 1000, true));
    idx.insert(seg(10, 5, 8));
    idx.insert(seg(0, 0, 1)); // ignored
    expect(idx.toArray()).toEqual([seg(0, 10, 1000, true), seg(10, 5, 8), seg(15, 85, 1000, true)]);
    expect(idx.dataSectors()).toBe(5);
  });

  it('matches a per-sector model under random inserts (many chunks)', () => {
    const SPACE = 6000;
    const op = fc.record({
      offset: fc.integer({ min: 0, max: SPACE - 1 }),
      length: fc.integer({ min: 0, max: 300 }),
      zeroed: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 1500 }), (ops) => {
        const idx = new MutableIndex();
        const model = new Float64Array(SPACE + 300).fill(-1); // moffset per sector, -2 = zeroed
        let next = 8;
        for (const o of ops) {
          const m = o.zeroed ? 99 : next;
          idx.insert(seg(o.offset, o.length, m, o.zeroed));
          for (let i = 0; i < o.length; i++) model[o.offset + i] = o.zeroed ? -2 : m + i;
          if (!o.zeroed) next += o.length;
        }
        const got = new Float64Array(model.length).fill(-1);
        let prevEnd = -1;
        let data = 0;
        let unordered = 0;
        for (const s of idx) {
          if (s.length <= 0 || s.offset < prevEnd) unordered++;
          prevEnd = s.offset + s.length;
          for (let i = 0; i < s.length; i++) got[s.offset + i] = s.zeroed ? -2 : s.moffset + i;
          if (!s.zeroed) data += s.length;
        }
        expect(unordered).toBe(0);
        expect(Buffer.from(got.buffer).equals(Buffer.from(model.buffer))).toBe(true);
        expect(idx.dataSectors()).toBe(data);
        expect(idx.toSegmentIndex().toArray()).toEqual(idx.toArray());
        // Range lookups agree with the model too.
        let bad = 0;
        for (const [b, e] of [
          [0, 50],
          [1000, 1777],
          [0, SPACE + 300],
        ] as const) {
          for (const s of idx.overlapping(b, e)) {
            if (s.offset < b || s.offset + s.length > e) bad++;
            for (let i = 0; i < s.length; i++) if ((s.zeroed ? -2 : s.moffset + i) !== model[s.offset + i]) bad++;
          }
        }
        expect(bad).toBe(0);
      }),
      { numRuns: 25 },
    );
  });

  it('stays sorted and consistent under 100k random small writes', () => {
    const idx = new MutableIndex();
    let x = 12345;
    const rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    for (let i = 0; i < 100_000; i++) idx.insertRaw(rnd() % 4_000_000, 1 + (rnd() % 64), 8 + i * 64, false, 0);
    expect(idx.size).toBeGreaterThan(50_000);
    let prevEnd = 0;
    let data = 0;
    let unordered = 0;
    for (const s of idx) {
      if (s.offset < prevEnd || s.length <= 0) unordered++;
      prevEnd = s.offset + s.length;
      data += s.length;
    }
    expect(unordered).toBe(0);
    expect(idx.dataSectors()).toBe(data);
  });
});
