// Chunk geometry of P2P transfers: a blob is cut into aligned CHUNK_SIZE pieces (the last one
// short), the unit peers request, push, cache and verify. It equals the block cache's refill unit
// so one cache miss is one chunk request. Not for byte ranges inside a chunk (the caller slices).
//
//   import { CHUNK_SIZE, chunkCount, chunkRange, chunksCovering } from './chunks.js';
//   chunksCovering(blobSize, offset, length) // → [first, end) chunk indices a read needs
//   chunkRange(blobSize, i)                  // → { offset, length } of chunk i

import { DadiError } from '../errors.js';

/** 1 MiB: the P2P chunk and the cache refill unit (overlaybd's P2P proxy uses the same). */
export const CHUNK_SIZE = 1 << 20;

export interface ByteRange {
  offset: number;
  length: number;
}

function checkSize(blobSize: number, chunkSize: number): void {
  if (!Number.isSafeInteger(blobSize) || blobSize < 0) {
    throw new DadiError('ERANGE', `blob size ${blobSize} is not a non-negative integer`);
  }
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
    throw new DadiError('EINVAL', `chunk size ${chunkSize} is not a positive integer`);
  }
}

/** How many chunks a blob of `blobSize` bytes has. */
export function chunkCount(blobSize: number, chunkSize = CHUNK_SIZE): number {
  checkSize(blobSize, chunkSize);
  return Math.ceil(blobSize / chunkSize);
}

/** The bytes of chunk `index`; ERANGE when the blob has no such chunk. */
export function chunkRange(blobSize: number, index: number, chunkSize = CHUNK_SIZE): ByteRange {
  const n = chunkCount(blobSize, chunkSize);
  if (!Number.isSafeInteger(index) || index < 0 || index >= n) {
    throw new DadiError('ERANGE', `chunk ${index} is outside a blob of ${n} chunks (${blobSize} bytes)`);
  }
  const offset = index * chunkSize;
  return { offset, length: Math.min(chunkSize, blobSize - offset) };
}

/** The chunk indices [first, end) that hold bytes [offset, offset+length) of the blob (clipped to it). */
export function chunksCovering(
  blobSize: number,
  offset: number,
  length: number,
  chunkSize = CHUNK_SIZE,
): { first: number; end: number } {
  checkSize(blobSize, chunkSize);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new DadiError('ERANGE', `range ${offset}+${length} is not a non-negative integer range`);
  }
  const end = Math.min(blobSize, offset + length);
  if (end <= offset) return { first: 0, end: 0 };
  return { first: Math.floor(offset / chunkSize), end: Math.ceil(end / chunkSize) };
}
