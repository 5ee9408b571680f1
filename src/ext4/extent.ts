// Extent trees: decode an inode's tree of any depth into a flat list of extents, and build a new
// tree (root in i_block, index and leaf blocks as needed) from a sorted extent list. Not an editor:
// writers rebuild a file's tree whole.

import { DadiError } from '../errors.js';
import { BLOCK_SIZE, I_BLOCK_SIZE } from './layout.js';

export const EXTENT_MAGIC = 0xf30a;
/** Longest initialized extent. */
export const MAX_EXTENT_LEN = 32768;
const HEADER = 12;
const ENTRY = 12;
const ROOT_MAX = (I_BLOCK_SIZE - HEADER) / ENTRY; // 4
const BLOCK_MAX = Math.floor((BLOCK_SIZE - HEADER) / ENTRY); // 340

/** A mapping of `len` logical blocks from `lblk` to physical blocks from `pblk`. */
export interface Extent {
  lblk: number;
  pblk: number;
  len: number;
  /** Unwritten (preallocated) extent: reads as zeros. */
  unwritten?: boolean;
}

// Header: magic u16, entries u16, max u16, depth u16, generation u32.
// Leaf entry: ee_block u32, ee_len u16, ee_start_hi u16, ee_start_lo u32.
// Index entry: ei_block u32, ei_leaf_lo u32, ei_leaf_hi u16, unused u16.

interface Node {
  depth: number;
  entries: number;
}

function readHeader(b: Uint8Array, name: string): Node {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dv.getUint16(0, true) !== EXTENT_MAGIC) throw new DadiError('ECORRUPT', `${name}: bad extent header magic`);
  const entries = dv.getUint16(2, true);
  const max = dv.getUint16(4, true);
  if (entries > max || HEADER + max * ENTRY > b.length)
    throw new DadiError('ECORRUPT', `${name}: bad extent header counts`);
  return { depth: dv.getUint16(6, true), entries };
}

/** Does this i_block hold an extent root? */
export function hasExtentRoot(iblock: Uint8Array): boolean {
  return iblock[0] === 0x0a && iblock[1] === 0xf3;
}

/**
 * Decode the tree rooted in `iblock`. `readBlock` returns the 4 KiB of a tree block.
 * Returns the extents in logical order and the physical blocks holding the tree (for freeing).
 */
export async function readExtentTree(
  iblock: Uint8Array,
  readBlock: (pblk: number) => Promise<Uint8Array>,
  name: string,
): Promise<{ extents: Extent[]; treeBlocks: number[] }> {
  const extents: Extent[] = [];
  const treeBlocks: number[] = [];
  const walk = async (node: Uint8Array, expectDepth: number | undefined, level: number): Promise<void> => {
    const h = readHeader(node, name);
    if (expectDepth !== undefined && h.depth !== expectDepth)
      throw new DadiError('ECORRUPT', `${name}: extent tree depth mismatch`);
    if (level > 8) throw new DadiError('ECORRUPT', `${name}: extent tree too deep`);
    const dv = new DataView(node.buffer, node.byteOffset, node.byteLength);
    for (let i = 0; i < h.entries; i++) {
      const o = HEADER + i * ENTRY;
      if (h.depth === 0) {
        let len = dv.getUint16(o + 4, true);
        let unwritten = false;
        if (len > MAX_EXTENT_LEN) {
          len -= MAX_EXTENT_LEN;
          unwritten = true;
        }
        const pblk = dv.getUint32(o + 8, true) + dv.getUint16(o + 6, true) * 0x1_0000_0000;
        const e: Extent = { lblk: dv.getUint32(o, true), pblk, len };
        if (unwritten) e.unwritten = true;
        extents.push(e);
      } else {
        const child = dv.getUint32(o + 4, true) + dv.getUint16(o + 8, true) * 0x1_0000_0000;
        treeBlocks.push(child);
        await walk(await readBlock(child), h.depth - 1, level + 1);
      }
    }
  };
  await walk(iblock, undefined, 0);
  return { extents, treeBlocks };
}

function writeHeader(b: Uint8Array, entries: number, max: number, depth: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint16(0, EXTENT_MAGIC, true);
  dv.setUint16(2, entries, true);
  dv.setUint16(4, max, true);
  dv.setUint16(6, depth, true);
  dv.setUint32(8, 0, true);
}

function writeLeaf(b: Uint8Array, i: number, e: Extent): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const o = HEADER + i * ENTRY;
  dv.setUint32(o, e.lblk, true);
  dv.setUint16(o + 4, e.unwritten ? e.len + MAX_EXTENT_LEN : e.len, true);
  dv.setUint16(o + 6, Math.floor(e.pblk / 0x1_0000_0000), true);
  dv.setUint32(o + 8, e.pblk % 0x1_0000_0000, true);
}

function writeIndex(b: Uint8Array, i: number, lblk: number, child: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const o = HEADER + i * ENTRY;
  dv.setUint32(o, lblk, true);
  dv.setUint32(o + 4, child % 0x1_0000_0000, true);
  dv.setUint16(o + 8, Math.floor(child / 0x1_0000_0000), true);
  dv.setUint16(o + 10, 0, true);
}

/** How many tree blocks `buildExtentTree` needs for `n` extents. */
export function treeBlocksNeeded(n: number): number {
  let total = 0;
  let level = n;
  while (level > ROOT_MAX) {
    level = Math.ceil(level / BLOCK_MAX);
    total += level;
  }
  return total;
}

/**
 * Build a tree for `extents` (sorted, lengths ≤ 32768). `blocks` are the physical blocks to use
 * for tree nodes (exactly `treeBlocksNeeded(extents.length)`). Returns the 60-byte root and the
 * node blocks' contents.
 */
export function buildExtentTree(
  extents: Extent[],
  blocks: number[],
): { root: Uint8Array; nodes: { pblk: number; data: Uint8Array }[] } {
  const root = new Uint8Array(I_BLOCK_SIZE);
  const nodes: { pblk: number; data: Uint8Array }[] = [];
  // Current level: items with their first logical block; leaves first.
  let items: { lblk: number; write: (b: Uint8Array, i: number) => void }[] = extents.map((e) => ({
    lblk: e.lblk,
    write: (b, i) => writeLeaf(b, i, e),
  }));
  let depth = 0;
  let next = 0;
  while (items.length > ROOT_MAX) {
    const upper: typeof items = [];
    for (let s = 0; s < items.length; s += BLOCK_MAX) {
      const chunk = items.slice(s, s + BLOCK_MAX);
      const pblk = blocks[next++];
      if (pblk === undefined) throw new DadiError('EINVAL', 'buildExtentTree: not enough tree blocks');
      const data = new Uint8Array(BLOCK_SIZE);
      writeHeader(data, chunk.length, BLOCK_MAX, depth);
      for (let i = 0; i < chunk.length; i++) chunk[i]!.write(data, i);
      nodes.push({ pblk, data });
      const lblk = chunk[0]!.lblk;
      upper.push({ lblk, write: (b, i) => writeIndex(b, i, lblk, pblk) });
    }
    items = upper;
    depth++;
  }
  writeHeader(root, items.length, ROOT_MAX, depth);
  for (let i = 0; i < items.length; i++) items[i]!.write(root, i);
  return { root, nodes };
}

/** Append block `pblk` at logical `lblk` to `extents`, merging with the last extent when contiguous. */
export function pushBlock(extents: Extent[], lblk: number, pblk: number, count = 1): void {
  const last = extents[extents.length - 1];
  if (last && last.lblk + last.len === lblk && last.pblk + last.len === pblk && !last.unwritten) {
    const room = MAX_EXTENT_LEN - last.len;
    const take = Math.min(room, count);
    last.len += take;
    lblk += take;
    pblk += take;
    count -= take;
  }
  while (count > 0) {
    const take = Math.min(MAX_EXTENT_LEN, count);
    extents.push({ lblk, pblk, len: take });
    lblk += take;
    pblk += take;
    count -= take;
  }
}
