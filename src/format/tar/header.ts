// The 512-byte ustar/GNU tar header: its field table, one decode/encode pair, checksums, numeric
// fields (octal or GNU base-256) and PAX records. Only what the one-member layer wrapper needs
// (spec §4); not a general tar reader or extractor.

export const TAR_BLOCK = 512;

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

/** Type flags the wrapper handles. */
export const TarType = {
  REGULAR: '0',
  PAX: 'x',
  PAX_GLOBAL: 'g',
  GNU_LONGNAME: 'L',
  GNU_LONGLINK: 'K',
} as const;

export interface TarHeader {
  name: string;
  /** Numeric fields; undefined when unparsable or above 2^53. */
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  size: number | undefined;
  mtime: number | undefined;
  /** One character; '\0' for old-style regular files. */
  typeflag: string;
  linkname: string;
  /** 'ustar' = POSIX ("ustar\0" + "00"), 'gnu' = GNU ("ustar  \0"), 'other' = neither. */
  format: 'ustar' | 'gnu' | 'other';
  uname: string;
  gname: string;
  prefix: string;
  /** The stored checksum matches the unsigned or the signed byte sum (as the reference accepts). */
  checksumOk: boolean;
  /** The whole block is zeros (end-of-archive marker). */
  zero: boolean;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder();

function field(block: Uint8Array, f: TarField): Uint8Array {
  const { offset, size } = TAR_FIELDS[f];
  return block.subarray(offset, offset + size);
}

/** A NUL-terminated (or full-width) string field. */
function text(block: Uint8Array, f: TarField): string {
  const b = field(block, f);
  const nul = b.indexOf(0);
  return utf8.decode(nul < 0 ? b : b.subarray(0, nul));
}

/**
 * A numeric field: GNU base-256 when the top bit of the first byte is set, otherwise octal digits
 * after optional leading spaces, ending at the first non-digit (no digits = 0, as sscanf("%o")).
 */
export function parseTarNumber(b: Uint8Array): number | undefined {
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
  while (i < b.length && (b[i] === 0x20 || (b[i]! >= 0x09 && b[i]! <= 0x0d))) i++;
  let v = 0;
  for (; i < b.length && b[i]! >= 0x30 && b[i]! <= 0x37; i++) {
    v = v * 8 + (b[i]! - 0x30);
    if (v > Number.MAX_SAFE_INTEGER) return undefined;
  }
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
export function decodeTarHeader(block: Uint8Array): TarHeader {
  if (block.length < TAR_BLOCK) throw new RangeError('tar header needs 512 bytes');
  const magic = latin1.decode(field(block, 'magic'));
  const version = latin1.decode(field(block, 'version'));
  const format =
    magic === 'ustar\0' && version === '00' ? 'ustar' : magic === 'ustar ' && version === ' \0' ? 'gnu' : 'other';
  const stored = parseTarNumber(field(block, 'chksum'));
  const sums = tarChecksums(block);
  return {
    name: text(block, 'name'),
    mode: parseTarNumber(field(block, 'mode')),
    uid: parseTarNumber(field(block, 'uid')),
    gid: parseTarNumber(field(block, 'gid')),
    size: parseTarNumber(field(block, 'size')),
    mtime: parseTarNumber(field(block, 'mtime')),
    typeflag: String.fromCharCode(block[TAR_FIELDS.typeflag.offset]!),
    linkname: text(block, 'linkname'),
    format,
    uname: text(block, 'uname'),
    gname: text(block, 'gname'),
    prefix: text(block, 'prefix'),
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

/** Parse PAX extended-header data into records; undefined if malformed. */
export function parsePaxRecords(data: Uint8Array): Map<string, string> | undefined {
  const records = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    let q = p;
    let len = 0;
    while (q < data.length && data[q]! >= 0x30 && data[q]! <= 0x39 && q - p < 16) len = len * 10 + data[q++]! - 0x30;
    if (q === p || data[q] !== 0x20 || len < 5 || p + len > data.length || data[p + len - 1] !== 0x0a) {
      return undefined;
    }
    const rec = data.subarray(q + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) return undefined;
    records.set(utf8.decode(rec.subarray(0, eq)), utf8.decode(rec.subarray(eq + 1)));
    p += len;
  }
  return records;
}
