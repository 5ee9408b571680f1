// Hash-indexed (htree, dx_dir) directories: the directory name hash (half_md4, signed or unsigned
// characters, as the superblock says) and the encoder that lays a directory out as mke2fs and
// `e2fsck -D` do — a dx_root block, leaf blocks filled in hash order with e2fsck's slack, and one
// level of dx_node blocks when the root cannot point at every leaf. Reading needs nothing from here:
// to a linear scan the index blocks are empty dirent blocks (dirent.ts).
//
// Block 0, dx_root:       "." dirent (rec_len 12) | ".." dirent (rec_len blocksize-12)
//   offset 24 dx_root_info: reserved u32 = 0 | hash_version u8 | info_length u8 = 8 |
//                           indirect_levels u8 | unused_flags u8
//   offset 32 dx_countlimit: limit u16 | count u16 (in place of entry 0's hash) | entry 0's block u32
//   offset 40 dx_entry[1..]: hash u32 | block u32
// dx_node blocks:          empty dirent (inode 0, rec_len blocksize) | dx_countlimit at 8 | entries
// A leaf's hash is its first name's hash; bit 0 set means the names before it share that hash.

import { type DirEntry, encodeDirRecord, recLen } from './dirent.js';
import { BLOCK_SIZE } from './layout.js';

export const DX_HASH_LEGACY = 0;
export const DX_HASH_HALF_MD4 = 1;
/** Superblock s_flags bits saying how name bytes are widened for hashing. */
export const EXT2_FLAGS_SIGNED_HASH = 0x1;
export const EXT2_FLAGS_UNSIGNED_HASH = 0x2;

export interface DirHashInfo {
  /** s_def_hash_version (only half_md4 is written indexed; other versions stay linear). */
  version: number;
  /** s_hash_seed (16 bytes; all zero means the default seed). */
  seed: Uint8Array;
  /** Name bytes as signed chars (s_flags signed_directory_hash, or neither flag set on x86). */
  signed: boolean;
}

const DEFAULT_SEED = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;

const rol = (x: number, s: number) => ((x << s) | (x >>> (32 - s))) >>> 0;
const F = (x: number, y: number, z: number) => z ^ (x & (y ^ z));
const G = (x: number, y: number, z: number) => ((x & y) + ((x ^ y) & z)) >>> 0;
const H = (x: number, y: number, z: number) => x ^ y ^ z;

/** The reduced MD4 transform the ext4 hash uses: three rounds of eight steps over 8 words. */
function halfMd4(buf: number[], w: number[]): void {
  let [a, b, c, d] = buf as [number, number, number, number];
  const step = (f: typeof F, p: number, q: number, r: number, s: number, x: number, k: number, sh: number) =>
    rol((p + f(q, r, s) + x + k) >>> 0, sh);
  // Round 1
  a = step(F, a, b, c, d, w[0]!, 0, 3);
  d = step(F, d, a, b, c, w[1]!, 0, 7);
  c = step(F, c, d, a, b, w[2]!, 0, 11);
  b = step(F, b, c, d, a, w[3]!, 0, 19);
  a = step(F, a, b, c, d, w[4]!, 0, 3);
  d = step(F, d, a, b, c, w[5]!, 0, 7);
  c = step(F, c, d, a, b, w[6]!, 0, 11);
  b = step(F, b, c, d, a, w[7]!, 0, 19);
  // Round 2
  a = step(G, a, b, c, d, w[1]!, K2, 3);
  d = step(G, d, a, b, c, w[3]!, K2, 5);
  c = step(G, c, d, a, b, w[5]!, K2, 9);
  b = step(G, b, c, d, a, w[7]!, K2, 13);
  a = step(G, a, b, c, d, w[0]!, K2, 3);
  d = step(G, d, a, b, c, w[2]!, K2, 5);
  c = step(G, c, d, a, b, w[4]!, K2, 9);
  b = step(G, b, c, d, a, w[6]!, K2, 13);
  // Round 3
  a = step(H, a, b, c, d, w[3]!, K3, 3);
  d = step(H, d, a, b, c, w[7]!, K3, 9);
  c = step(H, c, d, a, b, w[2]!, K3, 11);
  b = step(H, b, c, d, a, w[6]!, K3, 15);
  a = step(H, a, b, c, d, w[1]!, K3, 3);
  d = step(H, d, a, b, c, w[5]!, K3, 9);
  c = step(H, c, d, a, b, w[0]!, K3, 11);
  b = step(H, b, c, d, a, w[4]!, K3, 15);
  buf[0] = (buf[0]! + a) >>> 0;
  buf[1] = (buf[1]! + b) >>> 0;
  buf[2] = (buf[2]! + c) >>> 0;
  buf[3] = (buf[3]! + d) >>> 0;
}

/** `num` words from up to 4·num name bytes, padded with a word made of the length (str2hashbuf). */
function nameWords(name: Uint8Array, from: number, num: number, signed: boolean): number[] {
  const len = name.length - from;
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  const out: number[] = [];
  let val = pad;
  const n = Math.min(len, num * 4);
  for (let i = 0; i < n; i++) {
    const c = name[from + i]!;
    val = ((signed ? (c << 24) >> 24 : c) + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out.push(val);
      val = pad;
    }
  }
  if (out.length < num) out.push(val);
  while (out.length < num) out.push(pad);
  return out;
}

function seedWords(seed: Uint8Array): number[] {
  const dv = new DataView(seed.buffer, seed.byteOffset, 16);
  const w = [0, 1, 2, 3].map((i) => dv.getUint32(i * 4, true));
  return w.some((x) => x !== 0) ? w : [...DEFAULT_SEED];
}

/** The half_md4 directory hash of a name: [hash (bit 0 clear), minor hash]. */
export function dirHash(name: Uint8Array, info: DirHashInfo): [hash: number, minor: number] {
  const buf = seedWords(info.seed);
  for (let p = 0; p < name.length; p += 32) halfMd4(buf, nameWords(name, p, 8, info.signed));
  let hash = buf[1]! & ~1;
  // 0xfffffffe is the end-of-directory cookie of 32-bit readdir: never a name's hash.
  if (hash >>> 0 === 0xfffffffe) hash = 0xfffffffc;
  return [hash >>> 0, buf[2]!];
}

/** Whether directories of this filesystem can be written indexed. */
export function canIndex(info: DirHashInfo): boolean {
  return info.version === DX_HASH_HALF_MD4;
}

interface Hashed {
  entry: DirEntry;
  name: Buffer;
  hash: number;
  minor: number;
}

const ROOT_LIMIT = (BLOCK_SIZE - 32) / 8;
const NODE_LIMIT = (BLOCK_SIZE - 8) / 8;
/** e2fsck's default htree_slack_percentage: leaves are closed once less than this is free. */
const SLACK = Math.floor((BLOCK_SIZE * 20) / 100);

/** Leaves in hash order; each with the hash its index entry carries. */
function packLeaves(sorted: Hashed[]): { block: Uint8Array; hash: number }[] {
  const leaves: { block: Uint8Array; hash: number }[] = [];
  let cur: Uint8Array | undefined;
  let off = 0;
  let last = -1;
  let prevHash: number | undefined;
  const close = () => {
    if (cur) new DataView(cur.buffer).setUint16(last + 4, BLOCK_SIZE - last, true);
  };
  for (const h of sorted) {
    const rl = recLen(h.name.length);
    if (!cur || off + rl > BLOCK_SIZE) {
      close();
      cur = new Uint8Array(BLOCK_SIZE);
      off = 0;
      leaves.push({ block: cur, hash: h.hash === prevHash ? h.hash | 1 : h.hash });
    }
    encodeDirRecord(cur, off, h.entry.ino, rl, h.name, h.entry.type);
    last = off;
    off += rl;
    if (BLOCK_SIZE - off < SLACK) off = BLOCK_SIZE; // the rest stays free for later inserts
    prevHash = h.hash;
  }
  close();
  return leaves;
}

function putCountLimit(b: Uint8Array, at: number, limit: number, entries: { hash: number; block: number }[]): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint16(at, limit, true);
  dv.setUint16(at + 2, entries.length, true);
  dv.setUint32(at + 4, entries[0]!.block, true);
  for (let i = 1; i < entries.length; i++) {
    dv.setUint32(at + i * 8, entries[i]!.hash, true);
    dv.setUint32(at + i * 8 + 4, entries[i]!.block, true);
  }
}

/**
 * The blocks of an indexed directory holding `entries` (without "." and ".."), in logical order:
 * dx_root, the leaves, then any dx_node blocks. Undefined when the directory is too large for one
 * index level (it is then written linear).
 */
export function encodeIndexedDir(
  entries: Iterable<DirEntry>,
  self: number,
  parent: number,
  info: DirHashInfo,
): Uint8Array[] | undefined {
  const hashed: Hashed[] = [];
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'latin1');
    const [hash, minor] = dirHash(name, info);
    hashed.push({ entry, name, hash, minor });
  }
  hashed.sort((a, b) => a.hash - b.hash || a.minor - b.minor || Buffer.compare(a.name, b.name));
  const leaves = packLeaves(hashed);
  const levels = leaves.length <= ROOT_LIMIT ? 0 : 1;
  const nodeCount = levels ? Math.ceil(leaves.length / NODE_LIMIT) : 0;
  if (nodeCount > ROOT_LIMIT) return undefined;

  const root = new Uint8Array(BLOCK_SIZE);
  encodeDirRecord(root, 0, self, 12, Buffer.from('.'), 2);
  encodeDirRecord(root, 12, parent, BLOCK_SIZE - 12, Buffer.from('..'), 2);
  root[24 + 4] = info.version;
  root[24 + 5] = 8;
  root[24 + 6] = levels;
  const leafRefs = leaves.map((l, i) => ({ hash: l.hash, block: 1 + i }));
  const blocks = [root, ...leaves.map((l) => l.block)];
  if (!levels) putCountLimit(root, 32, ROOT_LIMIT, leafRefs);
  else {
    const nodeRefs: { hash: number; block: number }[] = [];
    for (let n = 0; n < nodeCount; n++) {
      const node = new Uint8Array(BLOCK_SIZE);
      new DataView(node.buffer).setUint16(4, BLOCK_SIZE, true);
      const part = leafRefs.slice(n * NODE_LIMIT, (n + 1) * NODE_LIMIT);
      putCountLimit(node, 8, NODE_LIMIT, part);
      nodeRefs.push({ hash: part[0]!.hash, block: blocks.length });
      blocks.push(node);
    }
    putCountLimit(root, 32, ROOT_LIMIT, nodeRefs);
  }
  return blocks;
}
