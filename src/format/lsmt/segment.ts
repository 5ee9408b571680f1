// The 16-byte LSMT index entry ("SegmentMapping", spec §2.4): encode/decode without BigInt.
// Not an index: see segment-index.ts (immutable) and mutable-index.ts (writable layer).
//
// Layout, as two little-endian u64 words (read here as four u32 halves):
// | word | bits  | field   | meaning                                            |
// |------|-------|---------|----------------------------------------------------|
// | w0   | 0–49  | offset  | logical sector                                     |
// | w0   | 50–63 | length  | sectors, 0..16383                                  |
// | w1   | 0–54  | moffset | sector in the backing file                         |
// | w1   | 55    | zeroed  | 1 = reads as zeros, no data                        |
// | w1   | 56–63 | tag     | runtime layer index; ignored on disk (except warp) |
// Invalid (padding) entry: offset = 2^50 − 1, everything else 0.

import { INVALID_OFFSET } from './constants.js';

/** One mapping, all fields in sectors. `end = offset + length`. */
export interface Segment {
  offset: number;
  length: number;
  moffset: number;
  zeroed: boolean;
  tag: number;
}

export const SEGMENT_BYTES = 16;
const TWO32 = 2 ** 32;

/** True when the entry at `pos` is a padding / invalid entry (offset = 2^50 − 1). */
export function isInvalidEntry(view: DataView, pos: number): boolean {
  return view.getUint32(pos, true) === 0xffffffff && (view.getUint32(pos + 4, true) & 0x3ffff) === 0x3ffff;
}

/** Decode the entry at byte `pos` of `view`. moffset is exact below 2^53 (larger values fail validation). */
export function decodeSegment(view: DataView, pos: number): Segment {
  const w0lo = view.getUint32(pos, true);
  const w0hi = view.getUint32(pos + 4, true);
  const w1lo = view.getUint32(pos + 8, true);
  const w1hi = view.getUint32(pos + 12, true);
  return {
    offset: w0lo + (w0hi & 0x3ffff) * TWO32,
    length: w0hi >>> 18,
    moffset: w1lo + (w1hi & 0x7fffff) * TWO32,
    zeroed: ((w1hi >>> 23) & 1) === 1,
    tag: w1hi >>> 24,
  };
}

/** Encode one entry at byte `pos` of `view`. Fields must already be in range. */
export function encodeSegment(
  view: DataView,
  pos: number,
  offset: number,
  length: number,
  moffset: number,
  zeroed: boolean,
  tag: number,
): void {
  const ohi = Math.floor(offset / TWO32);
  const mhi = Math.floor(moffset / TWO32);
  view.setUint32(pos, offset - ohi * TWO32, true);
  view.setUint32(pos + 4, ((ohi & 0x3ffff) | (length << 18)) >>> 0, true);
  view.setUint32(pos + 8, moffset - mhi * TWO32, true);
  view.setUint32(pos + 12, ((mhi & 0x7fffff) | (zeroed ? 1 << 23 : 0) | ((tag & 0xff) << 24)) >>> 0, true);
}

/** Encode an invalid (padding) entry. */
export function encodeInvalid(view: DataView, pos: number): void {
  encodeSegment(view, pos, INVALID_OFFSET, 0, 0, false, 0);
}

/** Encode a list of segments as index bytes (no padding). */
export function encodeSegments(segs: readonly Segment[]): Uint8Array {
  const out = new Uint8Array(segs.length * SEGMENT_BYTES);
  const view = new DataView(out.buffer);
  segs.forEach((s, i) => {
    encodeSegment(view, i * SEGMENT_BYTES, s.offset, s.length, s.moffset, s.zeroed, s.tag);
  });
  return out;
}
