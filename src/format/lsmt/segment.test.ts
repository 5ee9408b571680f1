import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INVALID_OFFSET } from './constants.js';
import { decodeSegment, encodeInvalid, encodeSegment, encodeSegments, isInvalidEntry } from './segment.js';

/** Reference encoding with BigInt (test only). */
function bigEncode(offset: number, length: number, moffset: number, zeroed: boolean, tag: number): Uint8Array {
  const w0 = BigInt(offset) | (BigInt(length) << 50n);
  const w1 = BigInt(moffset) | (BigInt(zeroed ? 1 : 0) << 55n) | (BigInt(tag) << 56n);
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, w0, true);
  v.setBigUint64(8, w1, true);
  return out;
}

describe('segment codec', () => {
  it('decodes a record of the fixture RW index (1048, 8, 8)', () => {
    const bytes = Uint8Array.of(0x18, 0x04, 0, 0, 0, 0, 0x20, 0, 0x08, 0, 0, 0, 0, 0, 0, 0);
    expect(decodeSegment(new DataView(bytes.buffer), 0)).toEqual({
      offset: 1048,
      length: 8,
      moffset: 8,
      zeroed: false,
      tag: 0,
    });
  });

  it('writes and detects the invalid (padding) entry FF FF FF FF FF FF 03 00 | 00×8', () => {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    encodeInvalid(view, 0);
    expect([...bytes]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(isInvalidEntry(view, 0)).toBe(true);
    expect(decodeSegment(view, 0).offset).toBe(INVALID_OFFSET);
    encodeSegment(view, 0, INVALID_OFFSET - 1, 0, 0, false, 0);
    expect(isInvalidEntry(view, 0)).toBe(false);
  });

  it('round-trips every field and matches a BigInt reference encoding', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 50 - 1 }),
        fc.integer({ min: 0, max: 16383 }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.boolean(),
        fc.integer({ min: 0, max: 255 }),
        (offset, length, moffset, zeroed, tag) => {
          const bytes = encodeSegments([{ offset, length, moffset, zeroed, tag }]);
          expect(bytes).toEqual(bigEncode(offset, length, moffset, zeroed, tag));
          expect(decodeSegment(new DataView(bytes.buffer), 0)).toEqual({ offset, length, moffset, zeroed, tag });
        },
      ),
      { numRuns: 2000 },
    );
  });
});
