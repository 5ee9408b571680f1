// The LSMT header / trailer (spec §2.2–2.3): one 4096-byte struct used at both ends of a file.
// Encode/decode only; which file kinds require which flags is decided by the openers.

import { DadiError } from '../../errors.js';
import { HT_SPACE, MAX_VIRTUAL_SIZE } from './constants.js';
import { NULL_UUID, normalizeUuid } from './uuid.js';

/** Field table (bytes, little-endian; the rest of the 4096 bytes is zero). */
export const HEADER_LAYOUT = {
  magic0: { at: 0, size: 8 }, // "LSMT\0\1\2\0"
  magic1: { at: 8, size: 16 }, // a UUID as u32,u16,u16,u16 LE + 6 bytes
  size: { at: 24, size: 4 }, // sizeof struct = 390, not validated
  flags: { at: 28, size: 4 },
  indexOffset: { at: 32, size: 8 }, // bytes
  indexSize: { at: 40, size: 8 }, // entries (padding included)
  virtualSize: { at: 48, size: 8 }, // bytes
  uuid: { at: 56, size: 37 }, // upper-case ASCII + NUL
  parentUuid: { at: 93, size: 37 },
  reserved: { at: 130, size: 2 },
  version: { at: 132, size: 1 },
  subVersion: { at: 133, size: 1 },
  userTag: { at: 134, size: 256 }, // NUL-padded, no terminator if exactly 256
} as const;
export const HEADER_STRUCT_SIZE = 390;

const MAGIC0 = Uint8Array.of(0x4c, 0x53, 0x4d, 0x54, 0x00, 0x01, 0x02, 0x00);
const MAGIC1 = Uint8Array.of(
  0x65,
  0x7e,
  0x63,
  0xd2,
  0x94,
  0x44,
  0x08,
  0x4c,
  0xa2,
  0xd2,
  0xc8,
  0xec,
  0x4f,
  0xcf,
  0xae,
  0x8a,
);

/** Flag bits (u32 at offset 28). Only bits 0–4 are meaningful; readers test single bits. */
export const Flag = {
  header: 1 << 0, // 1 header, 0 trailer
  dataFile: 1 << 1, // 1 data file, 0 index file
  sealed: 1 << 2,
  gcLayer: 1 << 3, // spec only
  sparseRw: 1 << 4,
} as const;

/** Flag values the reference writes. */
export const Flags = {
  rwData: 0x3,
  rwDataSparse: 0x13,
  rwIndex: 0x1,
  committedHeader: 0x7,
  sealedTrailer: 0x6,
} as const;

export interface LsmtHeader {
  flags: number;
  /** Bytes. Exact below 2^53; larger values fail every range check. */
  indexOffset: number;
  /** Entries. */
  indexSize: number;
  /** Bytes. */
  virtualSize: number;
  /** The uuid text as stored (normally upper case; the null uuid is all zeros). */
  uuid: string;
  parentUuid: string;
  version: number;
  subVersion: number;
  /** Commit message bytes, without the NUL padding. */
  userTag: Uint8Array;
}

export const isHeader = (h: LsmtHeader): boolean => (h.flags & Flag.header) !== 0;
export const isDataFile = (h: LsmtHeader): boolean => (h.flags & Flag.dataFile) !== 0;
export const isSealed = (h: LsmtHeader): boolean => (h.flags & Flag.sealed) !== 0;
export const isSparse = (h: LsmtHeader): boolean => (h.flags & Flag.sparseRw) !== 0;

/** True when `bytes` (≥ 24 bytes) start with both LSMT magics. */
export function hasLsmtMagic(bytes: Uint8Array): boolean {
  if (bytes.length < 24) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== MAGIC0[i]) return false;
  for (let i = 0; i < 16; i++) if (bytes[8 + i] !== MAGIC1[i]) return false;
  return true;
}

/** Decode a header/trailer. Throws EFORMAT (naming `name`) if the magics do not match. */
export function decodeHeader(bytes: Uint8Array, name = 'lsmt'): LsmtHeader {
  if (bytes.length < HEADER_STRUCT_SIZE || !hasLsmtMagic(bytes)) {
    throw new DadiError('EFORMAT', `${name}: no LSMT magic`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (at: number) => view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
  const L = HEADER_LAYOUT;
  return {
    flags: view.getUint32(L.flags.at, true),
    indexOffset: u64(L.indexOffset.at),
    indexSize: u64(L.indexSize.at),
    virtualSize: u64(L.virtualSize.at),
    uuid: cString(bytes.subarray(L.uuid.at, L.uuid.at + L.uuid.size)),
    parentUuid: cString(bytes.subarray(L.parentUuid.at, L.parentUuid.at + L.parentUuid.size)),
    version: bytes[L.version.at]!,
    subVersion: bytes[L.subVersion.at]!,
    userTag: Uint8Array.from(nulTrimmed(bytes.subarray(L.userTag.at, L.userTag.at + L.userTag.size))),
  };
}

/** Throw ERANGE unless `virtualSize` is at most MAX_VIRTUAL_SIZE. `what` names the file and struct. */
export function checkVirtualSize(what: string, virtualSize: number): void {
  if (virtualSize > MAX_VIRTUAL_SIZE) {
    throw new DadiError(
      'ERANGE',
      `${what}: virtual size ${virtualSize} bytes exceeds the ${MAX_VIRTUAL_SIZE / 2 ** 40} TiB this tool accepts`,
    );
  }
}

export interface HeaderFields {
  flags: number;
  indexOffset?: number;
  indexSize?: number;
  virtualSize: number;
  /** Any-case uuid; null uuid if absent. */
  uuid?: string;
  parentUuid?: string;
  userTag?: Uint8Array;
}

/** Encode a 4096-byte header/trailer (version 1.1, struct size 390). */
export function encodeHeader(f: HeaderFields): Uint8Array {
  const out = new Uint8Array(HT_SPACE);
  const view = new DataView(out.buffer);
  const L = HEADER_LAYOUT;
  const setU64 = (at: number, v: number) => {
    if (!Number.isSafeInteger(v) || v < 0) throw new DadiError('ERANGE', `lsmt header: bad u64 value ${v}`);
    view.setUint32(at, v % 2 ** 32, true);
    view.setUint32(at + 4, Math.floor(v / 2 ** 32), true);
  };
  out.set(MAGIC0, L.magic0.at);
  out.set(MAGIC1, L.magic1.at);
  view.setUint32(L.size.at, HEADER_STRUCT_SIZE, true);
  view.setUint32(L.flags.at, f.flags >>> 0, true);
  setU64(L.indexOffset.at, f.indexOffset ?? 0);
  setU64(L.indexSize.at, f.indexSize ?? 0);
  setU64(L.virtualSize.at, f.virtualSize);
  writeUuid(out, L.uuid.at, f.uuid ?? NULL_UUID, 'uuid');
  writeUuid(out, L.parentUuid.at, f.parentUuid ?? NULL_UUID, 'parent uuid');
  out[L.version.at] = 1;
  out[L.subVersion.at] = 1;
  const tag = f.userTag ?? new Uint8Array(0);
  if (tag.length > L.userTag.size) {
    throw new DadiError('EINVAL', `lsmt header: user tag is ${tag.length} bytes (at most ${L.userTag.size})`);
  }
  out.set(tag, L.userTag.at);
  return out;
}

/** A user tag (commit message) as header bytes. */
export function userTagBytes(tag: string | Uint8Array | undefined): Uint8Array {
  if (tag === undefined) return new Uint8Array(0);
  return typeof tag === 'string' ? new TextEncoder().encode(tag) : tag;
}

function writeUuid(out: Uint8Array, at: number, uuid: string, what: string): void {
  const text = normalizeUuid(uuid, what);
  for (let i = 0; i < 36; i++) out[at + i] = text.charCodeAt(i);
  out[at + 36] = 0;
}

function nulTrimmed(b: Uint8Array): Uint8Array {
  const z = b.indexOf(0);
  return z < 0 ? b : b.subarray(0, z);
}

function cString(b: Uint8Array): string {
  return String.fromCharCode(...nulTrimmed(b));
}
