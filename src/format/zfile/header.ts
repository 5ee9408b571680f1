// The ZFile header/trailer struct (spec §3.2): one 96-byte struct at the start of a 512-byte block,
// decoded and encoded by one pair of functions, plus its digest. Not the reader or writer logic.
//
// Old writers (the 2021 base layer) leave garbage in the upper flag bits, digest, index_crc and the
// bytes past 96: callers must test single low flag bits only and never require reserved bytes zero.

import { crc32cRaw } from '../../util/crc32c.js';

/** Size of the header and trailer blocks. */
export const ZFILE_HT_SPACE = 512;
/** sizeof(HeaderTrailer) in the reference. */
export const ZFILE_HT_STRUCT_SIZE = 96;

/** "ZFile\0\1\0". */
export const ZFILE_MAGIC0 = Uint8Array.of(0x5a, 0x46, 0x69, 0x6c, 0x65, 0x00, 0x01, 0x00);
/** "tuji.yyf@Alibaba" (a UUID in the reference source). */
export const ZFILE_MAGIC1 = new TextEncoder().encode('tuji.yyf@Alibaba');

/** Flag bit numbers (u64 at offset 32). Only these low bits carry meaning. */
export const ZFileFlag = {
  /** 1 = header, 0 = trailer. */
  HEADER: 0,
  /** 1 = data file. */
  DATA: 1,
  SEALED: 2,
  /** The header already holds the final index fields (the trailer may be skipped). */
  HEADER_OVERWRITE: 3,
  /** digest and index_crc are valid and checked. */
  DIGEST: 4,
  /** Defined by the reference, never written or honoured. */
  INDEX_COMPRESSION: 5,
} as const;

/** Flag values the reference writer uses. */
export const ZFILE_FLAGS_HEADER = 0x13n;
export const ZFILE_FLAGS_TRAILER = 0x16n;
export const ZFILE_FLAGS_OVERWRITTEN_HEADER = 0x1bn;

/** Algorithm codes (offset 76). 0 = MINI_LZO is defined by the reference but unsupported there too. */
export const ZFileAlgo = { MINI_LZO: 0, LZ4: 1, ZSTD: 2 } as const;

/** Seed of the per-block CRC32C-raw ("NOI_WELL_KNOWN_PRIME"). */
export const ZFILE_BLOCK_CRC_SEED = 100007;

/**
 * Byte layout of the struct (little-endian, natural alignment). The rest of the 512 bytes is zero in
 * current writers.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 8 | magic0 |
 * | 8 | 16 | magic1 |
 * | 24 | 4 | size (96) |
 * | 28 | 4 | digest: CRC32C-raw of the 512 bytes with this field zeroed |
 * | 32 | 8 | flags |
 * | 40 | 8 | index_offset (bytes) |
 * | 48 | 8 | index_size (blocks) |
 * | 56 | 8 | original_file_size |
 * | 64 | 4 | index_crc: CRC32C-raw(index bytes, 0) |
 * | 68 | 4 | reserved |
 * | 72 | 4 | block_size |
 * | 76 | 1 | algo |
 * | 77 | 1 | level (ignored) |
 * | 78 | 1 | use_dict |
 * | 79 | 1 | padding |
 * | 80 | 4 | reserved |
 * | 84 | 4 | dict_size |
 * | 88 | 1 | verify (1 = a 4-byte CRC follows every block) |
 * | 89 | 7 | padding |
 */
const F = {
  magic0: 0,
  magic1: 8,
  size: 24,
  digest: 28,
  flags: 32,
  indexOffset: 40,
  indexSize: 48,
  originalFileSize: 56,
  indexCrc: 64,
  blockSize: 72,
  algo: 76,
  level: 77,
  useDict: 78,
  dictSize: 84,
  verify: 88,
} as const;

export interface ZFileHeader {
  /** Both magics match. */
  magicOk: boolean;
  size: number;
  digest: number;
  /** All 64 bits as stored (upper bits may be garbage); test bits with `hasFlag`. */
  flags: bigint;
  /**
   * u64 fields as numbers. Values above 2^53 lose precision, which is harmless: every reader bound
   * rejects them long before.
   */
  indexOffset: number;
  indexSize: number;
  originalFileSize: number;
  indexCrc: number;
  blockSize: number;
  algo: number;
  level: number;
  useDict: number;
  dictSize: number;
  verify: number;
}

/** Whether flag bit `bit` (a `ZFileFlag` value) is set. */
export function hasFlag(flags: bigint, bit: number): boolean {
  return ((flags >> BigInt(bit)) & 1n) === 1n;
}

function u64(dv: DataView, at: number): number {
  return Number(dv.getBigUint64(at, true));
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Decode the struct from the first 96 bytes of `block` (at least 96 bytes long). */
export function decodeZFileHeader(block: Uint8Array): ZFileHeader {
  if (block.length < ZFILE_HT_STRUCT_SIZE) throw new RangeError('ZFile header needs 96 bytes');
  const dv = new DataView(block.buffer, block.byteOffset, ZFILE_HT_STRUCT_SIZE);
  return {
    magicOk:
      bytesEqual(block.subarray(F.magic0, F.magic0 + 8), ZFILE_MAGIC0) &&
      bytesEqual(block.subarray(F.magic1, F.magic1 + 16), ZFILE_MAGIC1),
    size: dv.getUint32(F.size, true),
    digest: dv.getUint32(F.digest, true),
    flags: dv.getBigUint64(F.flags, true),
    indexOffset: u64(dv, F.indexOffset),
    indexSize: u64(dv, F.indexSize),
    originalFileSize: u64(dv, F.originalFileSize),
    indexCrc: dv.getUint32(F.indexCrc, true),
    blockSize: dv.getUint32(F.blockSize, true),
    algo: dv.getUint8(F.algo),
    level: dv.getUint8(F.level),
    useDict: dv.getUint8(F.useDict),
    dictSize: dv.getUint32(F.dictSize, true),
    verify: dv.getUint8(F.verify),
  };
}

/**
 * Encode a full 512-byte header/trailer block (magics always written, reserved bytes zero). The
 * digest field is computed when the DIGEST flag is set, otherwise `h.digest` is written as given.
 */
export function encodeZFileHeader(h: Omit<ZFileHeader, 'magicOk'>): Uint8Array {
  const block = new Uint8Array(ZFILE_HT_SPACE);
  const dv = new DataView(block.buffer);
  block.set(ZFILE_MAGIC0, F.magic0);
  block.set(ZFILE_MAGIC1, F.magic1);
  dv.setUint32(F.size, h.size, true);
  dv.setBigUint64(F.flags, BigInt.asUintN(64, h.flags), true);
  dv.setBigUint64(F.indexOffset, BigInt(h.indexOffset), true);
  dv.setBigUint64(F.indexSize, BigInt(h.indexSize), true);
  dv.setBigUint64(F.originalFileSize, BigInt(h.originalFileSize), true);
  dv.setUint32(F.indexCrc, h.indexCrc >>> 0, true);
  dv.setUint32(F.blockSize, h.blockSize, true);
  dv.setUint8(F.algo, h.algo);
  dv.setUint8(F.level, h.level);
  dv.setUint8(F.useDict, h.useDict);
  dv.setUint32(F.dictSize, h.dictSize, true);
  dv.setUint8(F.verify, h.verify);
  const digest = hasFlag(h.flags, ZFileFlag.DIGEST) ? zfileDigest(block) : h.digest >>> 0;
  dv.setUint32(F.digest, digest, true);
  return block;
}

/** The digest of a 512-byte header/trailer block: CRC32C-raw with the digest field taken as zero. */
export function zfileDigest(block: Uint8Array): number {
  if (block.length !== ZFILE_HT_SPACE) throw new RangeError('ZFile digest covers exactly 512 bytes');
  let crc = crc32cRaw(block.subarray(0, F.digest), 0);
  crc = crc32cRaw(ZERO4, crc);
  return crc32cRaw(block.subarray(F.digest + 4), crc);
}

const ZERO4 = new Uint8Array(4);

/** The stored digest of a 512-byte block matches its content. */
export function zfileDigestOk(block: Uint8Array): boolean {
  const stored = new DataView(block.buffer, block.byteOffset + F.digest, 4).getUint32(0, true);
  return zfileDigest(block) === stored;
}
