// The one tar header codec: the 512-byte ustar/GNU header (field table, decode/encode, checksums,
// octal or GNU base-256 numbers), PAX records and the extension headers (PAX, GNU long names)
// that override a member's fields. Shared by the wrapper (detect/writer) and the layer-tar reader;
// it reads headers, not archives (see reader.ts and detect.ts for that).

import { DadiError } from '../../errors.js';
import { escapeName } from '../../util/quote.js';

export const TAR_BLOCK = 512;
/** Largest PAX or GNU long-name payload a reader buffers (hostile sizes are refused before reading). */
export const TAR_MAX_EXTENSION_SIZE = 1 << 20;

/** Field offsets and sizes of a ustar header block. */
export const TAR_FIELDS = {
  name: { offset: 0, size: 100 },
  mode: { offset: 100, size: 8 },
  uid: { offset: 108, size: 8 },
  gid: { offset: 116, size: 8 },
  size: { offset: 124, size: 12 },
  mtime: { offset: 136, size: 12 },
  chksum: { offset: 148, size: 8 },
  typeflag: { offset: 156, size: 1 },
  linkname: { offset: 157, size: 100 },
  magic: { offset: 257, size: 6 },
  version: { offset: 263, size: 2 },
  uname: { offset: 265, size: 32 },
  gname: { offset: 297, size: 32 },
  devmajor: { offset: 329, size: 8 },
  devminor: { offset: 337, size: 8 },
  prefix: { offset: 345, size: 155 },
} as const;

export type TarField = keyof typeof TAR_FIELDS;

/** The typeflag byte of a header (one character). */
export const TarTypeflag = {
  REGULAR: '0',
  /** Pre-POSIX regular file. */
  REGULAR_OLD: '\0',
  HARDLINK: '1',
  SYMLINK: '2',
  CHR: '3',
  BLK: '4',
  DIR: '5',
  FIFO: '6',
  /** Contiguous file: a regular file everywhere that matters. */
  CONTIGUOUS: '7',
  PAX: 'x',
  PAX_GLOBAL: 'g',
  GNU_LONGNAME: 'L',
  GNU_LONGLINK: 'K',
  GNU_SPARSE: 'S',
} as const;

export type TarNumberField = 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'devmajor' | 'devminor';

export interface TarHeader {
  /** NUL-terminated string fields, as raw bytes. */
  name: Uint8Array;
  linkname: Uint8Array;
  prefix: Uint8Array;
  uname: string;
  gname: string;
  /** Numeric fields; undefined when unparsable or above 2^53. */
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  size: number | undefined;
  mtime: number | undefined;
  devmajor: number | undefined;
  devminor: number | undefined;
  /** One character; '\0' for old-style regular files. */
  typeflag: string;
  /** 'ustar' = POSIX ("ustar\0" + "00"), 'gnu' = GNU ("ustar  \0"), 'other' = neither. */
  format: 'ustar' | 'gnu' | 'other';
  /** The stored checksum matches the unsigned or the signed byte sum (as the reference accepts). */
  checksumOk: boolean;
  /** The whole block is zeros (end-of-archive marker). */
  zero: boolean;
}

export interface TarDecodeOptions {
  /**
   * Strict: an octal field may hold only spaces, octal digits, then NULs or spaces (what tar
   * writers produce); anything else makes it undefined. Lenient (default): the reference's
   * sscanf("%o") — leading spaces, digits up to the first non-digit, no digits = 0.
   */
  strict?: boolean;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder();

/** Raw bytes as text for names and messages (UTF-8, invalid sequences replaced). */
export function tarText(b: Uint8Array): string {
  return utf8.decode(b);
}

/**
 * Name bytes quoted for an error message, never raw binary: in double quotes, in the escaped form
 * `dadi ls` prints (util/quote.ts: `\\`, `\xNN` for what is not printable) with `"` as `\x22`.
 */
export function quoteTarName(b: Uint8Array, max = 256): string {
  const cut = b.length > max ? b.subarray(0, max) : b;
  return `"${escapeName(cut).replaceAll('"', '\\x22')}"${b.length > max ? '…' : ''}`;
}

/** The first bytes of a stream in hex, for "this is not a tar" messages. */
export function hexHead(b: Uint8Array, n = 16): string {
  return Buffer.from(b.subarray(0, n))
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1 ');
}

function field(block: Uint8Array, f: TarField): Uint8Array {
  const { offset, size } = TAR_FIELDS[f];
  return block.subarray(offset, offset + size);
}

/** Bytes up to the first NUL. */
export function cstr(b: Uint8Array): Uint8Array {
  const nul = b.indexOf(0);
  return nul < 0 ? b : b.subarray(0, nul);
}

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/**
 * A numeric field: GNU base-256 when the top bit of the first byte is set, otherwise octal digits
 * after optional leading spaces (see TarDecodeOptions for strict and lenient endings).
 */
export function parseTarNumber(b: Uint8Array, strict = false): number | undefined {
  if (b.length === 0) return 0;
  if (b[0]! & 0x80) {
    if (b[0] === 0xff) return undefined; // negative
    let v = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) {
      v = v * 256 + b[i]!;
      if (v > Number.MAX_SAFE_INTEGER) return undefined;
    }
    return v;
  }
  let i = 0;
  while (i < b.length && isSpace(b[i]!)) i++;
  let v = 0;
  for (; i < b.length && b[i]! >= 0x30 && b[i]! <= 0x37; i++) {
    v = v * 8 + (b[i]! - 0x30);
    if (v > Number.MAX_SAFE_INTEGER) return undefined;
  }
  if (strict) for (; i < b.length && b[i] !== 0; i++) if (!isSpace(b[i]!)) return undefined;
  return v;
}

/** Unsigned and signed byte sums with the checksum field counted as spaces. */
export function tarChecksums(block: Uint8Array): { unsigned: number; signed: number } {
  const { offset, size } = TAR_FIELDS.chksum;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= offset && i < offset + size ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return { unsigned, signed };
}

/** Decode a 512-byte header block. */
export function decodeTarHeader(block: Uint8Array, opts: TarDecodeOptions = {}): TarHeader {
  if (block.length < TAR_BLOCK) throw new RangeError('tar header needs 512 bytes');
  const strict = opts.strict ?? false;
  const num = (f: TarNumberField) => parseTarNumber(field(block, f), strict);
  const magic = latin1.decode(field(block, 'magic'));
  const version = latin1.decode(field(block, 'version'));
  const format =
    magic === 'ustar\0' && version === '00' ? 'ustar' : magic === 'ustar ' && version === ' \0' ? 'gnu' : 'other';
  const stored = parseTarNumber(field(block, 'chksum'), strict);
  const sums = tarChecksums(block);
  return {
    name: cstr(field(block, 'name')),
    linkname: cstr(field(block, 'linkname')),
    // GNU headers keep other data where ustar has its prefix; only the POSIX magic means a prefix.
    prefix: magic === 'ustar\0' ? cstr(field(block, 'prefix')) : new Uint8Array(0),
    uname: utf8.decode(cstr(field(block, 'uname'))),
    gname: utf8.decode(cstr(field(block, 'gname'))),
    mode: num('mode'),
    uid: num('uid'),
    gid: num('gid'),
    size: num('size'),
    mtime: num('mtime'),
    devmajor: num('devmajor'),
    devminor: num('devminor'),
    typeflag: String.fromCharCode(block[TAR_FIELDS.typeflag.offset]!),
    format,
    checksumOk: stored === sums.unsigned || stored === sums.signed,
    zero: block.subarray(0, TAR_BLOCK).every((b) => b === 0),
  };
}

/**
 * Encode a header block from raw field texts (written as given, truncated to the field, the rest
 * zero). With `checksum`, the chksum field is set the reference's way ("%6lo " + NUL).
 */
export function encodeTarHeader(fields: Partial<Record<TarField, string>>, opts: { checksum: boolean }): Uint8Array {
  const block = new Uint8Array(TAR_BLOCK);
  const enc = new TextEncoder();
  for (const [k, v] of Object.entries(fields) as [TarField, string][]) {
    const { offset, size } = TAR_FIELDS[k];
    block.set(enc.encode(v).subarray(0, size), offset);
  }
  if (opts.checksum) block.set(enc.encode(octal(tarChecksums(block).unsigned, 8)), TAR_FIELDS.chksum.offset);
  return block;
}

/**
 * The reference's `int_to_oct(n, field, len)`: snprintf("%*lo ", len-2, n) — right-aligned octal
 * and a space, NUL-terminated within `len` bytes (returned without the NUL).
 */
export function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 2, ' ')} `.slice(0, len - 1);
}

/** The reference's `int_to_oct_nonull(n, field, len)`: len-1 right-aligned octal digits, then a space. */
export function octalNoNul(n: number, len: number): string {
  return `${n
    .toString(8)
    .padStart(len - 1, ' ')
    .slice(0, len - 1)} `;
}

/** A PAX record "<len> key=value\n" where len counts the whole record (reference format_pax_record). */
export function formatPaxRecord(key: string, value: string): string {
  const bytes = (t: string) => Buffer.byteLength(t);
  let size = bytes(key) + bytes(value) + 3; // ' ', '=' and '\n'
  size += String(size).length;
  let record = `${size} ${key}=${value}\n`;
  if (bytes(record) !== size) {
    size = bytes(record);
    record = `${size} ${key}=${value}\n`;
  }
  return record;
}

/** PAX records: key → raw value bytes (binary SCHILY.xattr values must survive). */
export type PaxRecords = Map<string, Uint8Array>;

/**
 * Parse PAX extended-header data; trailing NUL padding is allowed. Throws EFORMAT (without a file
 * name: callers add theirs) when a record is malformed.
 */
export function parsePaxRecords(data: Uint8Array): PaxRecords {
  return new Map(parsePaxRecordList(data));
}

/** PAX records in the order written, repeated keys kept (GNU sparse 0.0 repeats its map keys). */
export function parsePaxRecordList(data: Uint8Array): [string, Uint8Array][] {
  const records: [string, Uint8Array][] = [];
  let p = 0;
  while (p < data.length && data[p] !== 0) {
    let q = p;
    let len = 0;
    while (q < data.length && data[q]! >= 0x30 && data[q]! <= 0x39 && q - p < 16) len = len * 10 + data[q++]! - 0x30;
    if (q === p || data[q] !== 0x20 || len <= q - p + 1 || p + len > data.length || data[p + len - 1] !== 0x0a)
      throw new DadiError('EFORMAT', `malformed PAX record at byte ${p}`);
    const rec = data.subarray(q + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new DadiError('EFORMAT', `PAX record at byte ${p} has no key`);
    records.push([utf8.decode(rec.subarray(0, eq)), rec.slice(eq + 1)]);
    p += len;
  }
  return records;
}

/** A PAX record's value as text, or undefined. */
export function paxText(records: PaxRecords, key: string): string | undefined {
  const v = records.get(key);
  return v === undefined ? undefined : utf8.decode(v);
}

/** A PAX decimal record (size, uid, gid, devmajor, ...) as a safe integer; EFORMAT when malformed. */
export function paxNumber(records: PaxRecords, key: string): number | undefined {
  const s = paxText(records, key);
  if (s === undefined) return undefined;
  if (!/^\d{1,16}$/.test(s) || !Number.isSafeInteger(Number(s)))
    throw new DadiError('EFORMAT', `bad PAX ${key} ${JSON.stringify(s)}`);
  return Number(s);
}

/** Seconds and nanoseconds (the shape of ext4's Time). */
export interface TarTime {
  sec: number;
  nsec: number;
}

/** A PAX time record ("[-]sec[.frac]"); EFORMAT when malformed. */
export function paxTime(records: PaxRecords, key: string): TarTime | undefined {
  const s = paxText(records, key);
  if (s === undefined) return undefined;
  const m = /^(-?)(\d{1,16})(?:\.(\d+))?$/.exec(s);
  if (!m || !Number.isSafeInteger(Number(m[2]))) throw new DadiError('EFORMAT', `bad PAX ${key} ${JSON.stringify(s)}`);
  const sec = Number(m[2]);
  const nsec = Number(`${m[3] ?? ''}000000000`.slice(0, 9));
  if (m[1]) return nsec ? { sec: -sec - 1, nsec: 1e9 - nsec } : { sec: -sec, nsec: 0 };
  return { sec, nsec };
}

/** Whether a typeflag marks an extension header (data that changes the next member). */
export function isTarExtension(typeflag: string): boolean {
  return (
    typeflag === TarTypeflag.PAX ||
    typeflag === TarTypeflag.PAX_GLOBAL ||
    typeflag === TarTypeflag.GNU_LONGNAME ||
    typeflag === TarTypeflag.GNU_LONGLINK
  );
}

/**
 * The extension headers seen before a member, and what they override: `add` each one's data,
 * then `take` the overrides for the member that follows (global PAX records stay for later ones).
 */
export class TarExtensions {
  private global: PaxRecords = new Map();
  private pax: [string, Uint8Array][] | undefined;
  private longName: Uint8Array | undefined;
  private longLink: Uint8Array | undefined;

  /** Extension data is waiting for its member. */
  get pending(): boolean {
    return this.pax !== undefined || this.longName !== undefined || this.longLink !== undefined;
  }

  /** Record an extension header's data (EFORMAT without a file name when malformed). */
  add(typeflag: string, data: Uint8Array): void {
    switch (typeflag) {
      case TarTypeflag.PAX:
        this.pax = [...(this.pax ?? []), ...parsePaxRecordList(data)];
        break;
      case TarTypeflag.PAX_GLOBAL:
        this.global = new Map([...this.global, ...parsePaxRecords(data)]);
        break;
      case TarTypeflag.GNU_LONGNAME:
        this.longName = cstr(data).slice();
        break;
      case TarTypeflag.GNU_LONGLINK:
        this.longLink = cstr(data).slice();
        break;
      default:
        throw new RangeError(`not an extension typeflag ${JSON.stringify(typeflag)}`);
    }
  }

  /**
   * The member's path and link path (PAX over GNU long name over ustar prefix/name) and its
   * effective PAX records (global, then per-member) and the per-member ones in order; clears the
   * per-member state.
   */
  take(h: TarHeader): {
    path: Uint8Array;
    linkpath: Uint8Array;
    records: PaxRecords;
    recordList: [string, Uint8Array][];
  } {
    const recordList = this.pax ?? [];
    const records = new Map([...this.global, ...(this.pax ?? [])]);
    let path = this.longName ?? (h.prefix.length ? Buffer.concat([h.prefix, Buffer.from('/'), h.name]) : h.name);
    let linkpath = this.longLink ?? h.linkname;
    path = records.get('path') ?? path;
    linkpath = records.get('linkpath') ?? linkpath;
    this.pax = this.longName = this.longLink = undefined;
    return { path, linkpath, records, recordList };
  }
}
