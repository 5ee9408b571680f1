// Extended attributes: the in-inode area and the one external xattr block, their entry tables,
// the name-prefix indexes and the ext4 entry/block hashes. Not the policy of where attributes go
// (see fs.ts: in the inode when they fit, else all in a block).

import { DadiError } from '../errors.js';
import { aclFromDisk, aclToDisk } from './acl.js';
import { BLOCK_SIZE } from './layout.js';

export const XATTR_MAGIC = 0xea020000;

const ACL_ACCESS = 2;
const ACL_DEFAULT = 3;
const isAcl = (index: number) => index === ACL_ACCESS || index === ACL_DEFAULT;

const PREFIXES: [index: number, prefix: string][] = [
  [ACL_ACCESS, 'system.posix_acl_access'],
  [ACL_DEFAULT, 'system.posix_acl_default'],
  [1, 'user.'],
  [4, 'trusted.'],
  [6, 'security.'],
  [7, 'system.'],
];

function splitName(full: string): { index: number; suffix: Buffer } {
  for (const [index, prefix] of PREFIXES) {
    if (full.startsWith(prefix)) {
      if (isAcl(index) && full !== prefix) continue;
      return { index, suffix: Buffer.from(full.slice(prefix.length), 'latin1') };
    }
  }
  throw new DadiError('EUNSUPPORTED', `xattr ${JSON.stringify(full)}: unsupported name prefix`);
}

function joinName(index: number, suffix: Uint8Array): string {
  const p = PREFIXES.find(([i]) => i === index);
  const s = Buffer.from(suffix).toString('latin1');
  return p ? p[1] + s : `unknown${index}.${s}`;
}

/** ext4_xattr_hash_entry (name bytes as signed chars, value as little-endian u32 words). */
export function entryHash(suffix: Uint8Array, value: Uint8Array): number {
  let h = 0;
  for (const c of suffix) h = ((h << 5) ^ (h >>> 27) ^ ((c << 24) >> 24)) >>> 0;
  const words = (value.length + 3) >> 2;
  for (let i = 0; i < words; i++) {
    const o = i * 4;
    const w = (value[o] ?? 0) | ((value[o + 1] ?? 0) << 8) | ((value[o + 2] ?? 0) << 16) | ((value[o + 3] ?? 0) << 24);
    h = ((h << 16) ^ (h >>> 16) ^ w) >>> 0;
  }
  return h;
}

/** Xattr names (full, e.g. "user.foo", latin1 byte strings) to raw values. */
export type Xattrs = Map<string, Uint8Array>;

// Entry: name_len u8, name_index u8, value_offs u16, value_inum u32, value_size u32, hash u32, name.
const ENTRY = 16;

function entrySize(nameLen: number): number {
  return (ENTRY + nameLen + 3) & ~3;
}

function decodeEntries(region: Uint8Array, first: number, valueBase: number, what: string, out: Xattrs): void {
  const dv = new DataView(region.buffer, region.byteOffset, region.byteLength);
  let o = first;
  while (o + 4 <= region.length && dv.getUint32(o, true) !== 0) {
    if (o + ENTRY > region.length) throw new DadiError('ECORRUPT', `${what}: xattr entry past end`);
    const nl = region[o]!;
    const index = region[o + 1]!;
    const voff = dv.getUint16(o + 2, true);
    const inum = dv.getUint32(o + 4, true);
    const vsize = dv.getUint32(o + 8, true);
    if (inum !== 0) throw new DadiError('EUNSUPPORTED', `${what}: xattr value in an inode (ea_inode)`);
    const suffix = region.subarray(o + ENTRY, o + ENTRY + nl);
    const vs = valueBase + voff;
    if (vs + vsize > region.length) throw new DadiError('ECORRUPT', `${what}: xattr value past end`);
    const name = joinName(index, suffix);
    const value = region.slice(vs, vs + vsize);
    out.set(name, isAcl(index) ? aclFromDisk(value, `${what}: ${name}`) : value);
    o += entrySize(nl);
  }
}

/** Decode the in-inode area (starting with the 4-byte magic), if present. */
export function decodeInodeXattrs(area: Uint8Array, what: string, out: Xattrs = new Map()): Xattrs {
  if (area.length < 4 || new DataView(area.buffer, area.byteOffset).getUint32(0, true) !== XATTR_MAGIC) return out;
  decodeEntries(area.subarray(4), 0, 0, what, out);
  return out;
}

/** Decode an xattr block. */
export function decodeXattrBlock(b: Uint8Array, what: string, out: Xattrs = new Map()): Xattrs {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dv.getUint32(0, true) !== XATTR_MAGIC) throw new DadiError('ECORRUPT', `${what}: bad xattr block magic`);
  decodeEntries(b, 32, 0, what, out);
  return out;
}

export function xattrBlockRefcount(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4, true);
}

export function setXattrBlockRefcount(b: Uint8Array, n: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(4, n, true);
}

interface Prepared {
  index: number;
  suffix: Buffer;
  value: Uint8Array;
  hash: number;
}

/** Names split into index and suffix, values in their on-disk form (ACLs converted), hashed. */
function prepare(attrs: Xattrs, what: string): Prepared[] {
  const list = [...attrs].map(([name, xattrValue]) => {
    const { index, suffix } = splitName(name);
    if (suffix.length > 255) throw new DadiError('EINVAL', `xattr ${JSON.stringify(name)}: name too long`);
    const value = isAcl(index) ? aclToDisk(xattrValue, `${what}: ${name}`) : xattrValue;
    return { index, suffix, value, hash: entryHash(suffix, value) };
  });
  // The kernel's block order: index, name length, name.
  list.sort((a, b) => a.index - b.index || a.suffix.length - b.suffix.length || Buffer.compare(a.suffix, b.suffix));
  return list;
}

function layout(list: Prepared[], region: Uint8Array, first: number, valueBase: number): boolean {
  const dv = new DataView(region.buffer, region.byteOffset, region.byteLength);
  let o = first;
  let vend = region.length;
  for (const e of list) {
    const es = entrySize(e.suffix.length);
    const vlen = (e.value.length + 3) & ~3;
    vend -= vlen;
    if (o + es + 4 > vend) return false;
    region[o] = e.suffix.length;
    region[o + 1] = e.index;
    dv.setUint16(o + 2, e.value.length === 0 ? 0 : vend - valueBase, true);
    dv.setUint32(o + 4, 0, true);
    dv.setUint32(o + 8, e.value.length, true);
    dv.setUint32(o + 12, e.hash, true);
    region.set(e.suffix, o + ENTRY);
    region.set(e.value, vend);
    o += es;
  }
  return true;
}

/** Encode into an in-inode area of `size` bytes; null when they do not fit. Empty → all zeros. */
export function encodeInodeXattrs(attrs: Xattrs, size: number, what: string): Uint8Array | null {
  const area = new Uint8Array(size);
  if (attrs.size === 0) return area;
  new DataView(area.buffer).setUint32(0, XATTR_MAGIC, true);
  return layout(prepare(attrs, what), area.subarray(4), 0, 0) ? area : null;
}

/** Encode an xattr block (refcount 1); throws when they do not fit in one block. */
export function encodeXattrBlock(attrs: Xattrs, what: string): Uint8Array {
  const b = new Uint8Array(BLOCK_SIZE);
  const list = prepare(attrs, what);
  if (!layout(list, b, 32, 0))
    throw new DadiError('EUNSUPPORTED', `${what}: xattrs do not fit in one block (${attrs.size} attributes)`);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, XATTR_MAGIC, true);
  dv.setUint32(4, 1, true); // refcount
  dv.setUint32(8, 1, true); // blocks
  let h = 0;
  for (const e of list) h = ((h << 16) ^ (h >>> 16) ^ e.hash) >>> 0;
  dv.setUint32(12, h, true);
  return b;
}
