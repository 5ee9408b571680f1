// The block cache's on-disk layout: file names per blob, the page-map header and the data-file
// trailer, each encoded/decoded by one pair of functions. Not the I/O (store.ts) or policy (cache.ts).
//
// Per blob `K` (an OCI digest such as `sha256:<hex>`), two files in the cache directory:
//
//   K.data  sparse, length alignUp(size, PAGE) + TRAILER_SIZE
//           [0, size)            blob bytes; only pages marked in K.map are meaningful
//           [alignUp(size), +32) trailer (below)
//   K.map   [0, 4096)            header (below)
//           [4096, +ceil(pages/8)) page bitmap, bit (p & 7) of byte (p >> 3) = page p is cached
//
// Map header (little-endian, zero padded to 4096 bytes):
//   off size field
//   0   8    magic "DADICMAP"
//   8   4    version (1)
//   12  4    page size (4096)
//   16  8    blob size (< 2^53)
//   24  8    nonce: random, equal to the data trailer's (pairs the two files)
//   32  4    key length in bytes (≤ MAX_KEY)
//   36  4    CRC32C of bytes [0, 4096) with this field zero
//   40  n    key, UTF-8
//
// Data trailer (little-endian, 32 bytes):
//   0   8    magic "DADICDAT"
//   8   4    version (1)
//   12  4    CRC32C of the 32 bytes with this field zero
//   16  8    blob size
//   24  8    nonce

import { crc32c } from '@node-rs/crc32';
import { DadiError } from '../errors.js';

export const PAGE = 4096;
export const MAP_HEADER_SIZE = 4096;
export const TRAILER_SIZE = 32;
export const MAX_KEY = 1024;
const VERSION = 1;
const MAP_MAGIC = Buffer.from('DADICMAP', 'latin1');
const DATA_MAGIC = Buffer.from('DADICDAT', 'latin1');

/** OCI digest grammar: algorithm ":" encoded. Keys of this form are safe file names as they are. */
const KEY_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function checkKey(key: string): void {
  if (!KEY_RE.test(key) || Buffer.byteLength(key) > MAX_KEY) {
    throw new DadiError('EINVAL', `cache key ${JSON.stringify(key)} is not a digest (algorithm:hex)`);
  }
}

export function dataName(key: string): string {
  return `${key}.data`;
}
export function mapName(key: string): string {
  return `${key}.map`;
}

/** The key of a cache file name, with its kind; undefined for names that are not ours. */
export function parseName(name: string): { key: string; kind: 'data' | 'map' } | undefined {
  const m = /^(.*)\.(data|map)$/.exec(name);
  if (!m || !KEY_RE.test(m[1]!)) return undefined;
  return { key: m[1]!, kind: m[2] as 'data' | 'map' };
}

export function pageCount(size: number): number {
  return Math.ceil(size / PAGE);
}
export function bitmapBytes(size: number): number {
  return Math.ceil(pageCount(size) / 8);
}
/** Where the data trailer starts (the blob rounded up to whole pages). */
export function dataEnd(size: number): number {
  return Math.ceil(size / PAGE) * PAGE;
}
export function mapFileSize(size: number): number {
  return MAP_HEADER_SIZE + bitmapBytes(size);
}

export interface MapHeader {
  size: number;
  nonce: bigint;
  key: string;
}

export function encodeMapHeader(h: MapHeader): Buffer {
  const b = Buffer.alloc(MAP_HEADER_SIZE);
  MAP_MAGIC.copy(b, 0);
  b.writeUInt32LE(VERSION, 8);
  b.writeUInt32LE(PAGE, 12);
  b.writeBigUInt64LE(BigInt(h.size), 16);
  b.writeBigUInt64LE(h.nonce, 24);
  const key = Buffer.from(h.key, 'utf8');
  b.writeUInt32LE(key.length, 32);
  key.copy(b, 40);
  b.writeUInt32LE(crc32c(b), 36);
  return b;
}

/** Decode a map header; undefined when it is not a valid one (torn, foreign, other version). */
export function decodeMapHeader(b: Buffer): MapHeader | undefined {
  if (b.length < MAP_HEADER_SIZE || !b.subarray(0, 8).equals(MAP_MAGIC)) return undefined;
  if (b.readUInt32LE(8) !== VERSION || b.readUInt32LE(12) !== PAGE) return undefined;
  const crc = b.readUInt32LE(36);
  const copy = Buffer.from(b.subarray(0, MAP_HEADER_SIZE));
  copy.writeUInt32LE(0, 36);
  if (crc32c(copy) !== crc) return undefined;
  const size = b.readBigUInt64LE(16);
  const keyLen = b.readUInt32LE(32);
  if (size > BigInt(Number.MAX_SAFE_INTEGER) || keyLen > MAX_KEY) return undefined;
  return { size: Number(size), nonce: b.readBigUInt64LE(24), key: b.toString('utf8', 40, 40 + keyLen) };
}

export function encodeTrailer(size: number, nonce: bigint): Buffer {
  const b = Buffer.alloc(TRAILER_SIZE);
  DATA_MAGIC.copy(b, 0);
  b.writeUInt32LE(VERSION, 8);
  b.writeBigUInt64LE(BigInt(size), 16);
  b.writeBigUInt64LE(nonce, 24);
  b.writeUInt32LE(crc32c(b), 12);
  return b;
}

export function decodeTrailer(b: Buffer): { size: number; nonce: bigint } | undefined {
  if (b.length < TRAILER_SIZE || !b.subarray(0, 8).equals(DATA_MAGIC) || b.readUInt32LE(8) !== VERSION) {
    return undefined;
  }
  const copy = Buffer.from(b.subarray(0, TRAILER_SIZE));
  copy.writeUInt32LE(0, 12);
  if (crc32c(copy) !== b.readUInt32LE(12)) return undefined;
  const size = b.readBigUInt64LE(16);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { size: Number(size), nonce: b.readBigUInt64LE(24) };
}
