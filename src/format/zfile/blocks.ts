// Compressing runs of ZFile blocks (spec §3.3): one block into a caller buffer, or a whole batch of
// consecutive blocks into one output buffer with their stored lengths. Shared by the writer's
// inline path and the compression worker, so both produce the same bytes. Not the framing (header,
// jump table); see writer.ts.

import { crc32cRaw } from '../../util/crc32c.js';
import type { BlockCodec } from './codec.js';
import { ZFILE_BLOCK_CRC_SEED } from './header.js';

/**
 * Compress `src` (one block) into `dst` and, with `verify`, append its CRC32C-raw (seed 100007).
 * `dst` must hold `codec.bound(src.length) + 4` bytes. Returns the stored length.
 */
export function compressBlock(codec: BlockCodec, src: Uint8Array, dst: Uint8Array, verify: boolean): number {
  const len = codec.compress(src, dst.subarray(0, dst.length - 4));
  if (!verify) return len;
  const crc = crc32cRaw(dst.subarray(0, len), ZFILE_BLOCK_CRC_SEED);
  dst[len] = crc & 0xff;
  dst[len + 1] = (crc >>> 8) & 0xff;
  dst[len + 2] = (crc >>> 16) & 0xff;
  dst[len + 3] = crc >>> 24;
  return len + 4;
}

/** Output bytes a batch of `n` input bytes in blocks of `blockSize` may need. */
export function batchBound(codec: BlockCodec, blockSize: number, n: number): number {
  const full = Math.floor(n / blockSize);
  const rest = n - full * blockSize;
  return full * (codec.bound(blockSize) + 4) + (rest > 0 ? codec.bound(rest) + 4 : 0);
}

/**
 * Compress `src` as consecutive blocks of `blockSize` (the last may be shorter) into `dst`
 * (≥ batchBound bytes), back to back. Returns the bytes written and each block's stored length.
 */
export function compressBatch(
  codec: BlockCodec,
  blockSize: number,
  verify: boolean,
  src: Uint8Array,
  dst: Uint8Array,
): { length: number; lengths: Uint32Array } {
  const lengths = new Uint32Array(Math.ceil(src.length / blockSize));
  const room = codec.bound(blockSize) + 4;
  let at = 0;
  for (let k = 0, p = 0; p < src.length; k++, p += blockSize) {
    const n = compressBlock(codec, src.subarray(p, p + blockSize), dst.subarray(at, at + room), verify);
    lengths[k] = n;
    at += n;
  }
  return { length: at, lengths };
}
