// The fixed layout of a filesystem: group count, inodes per group, where each group's bitmaps and
// inode table live (flex_bg packs 16 groups' metadata into the first group of each flex group),
// and which groups carry superblock backups (sparse_super). Computed by mkfs, re-derived on open.

import { DadiError } from '../errors.js';
import { BLOCK_SIZE, DESC_SIZE, INODE_SIZE, LOG_GROUPS_PER_FLEX } from './layout.js';

export const BLOCKS_PER_GROUP = 32768;

export interface Geometry {
  blocksCount: number;
  groupCount: number;
  inodesPerGroup: number;
  inodeTableBlocks: number;
  gdtBlocks: number;
}

/** sparse_super: groups 0, 1 and powers of 3, 5 and 7 hold superblock + GDT backups. */
export function hasSuper(g: number): boolean {
  if (g <= 1) return true;
  for (const p of [3, 5, 7]) {
    let x = p;
    while (x < g) x *= p;
    if (x === g) return true;
  }
  return false;
}

export function computeGeometry(sizeBytes: number, inodeRatio: number): Geometry {
  let blocksCount = Math.floor(sizeBytes / BLOCK_SIZE);
  const rem = blocksCount % BLOCKS_PER_GROUP;
  if (rem > 0 && rem < 1024 && blocksCount > BLOCKS_PER_GROUP) blocksCount -= rem; // drop a tiny last group
  if (blocksCount < 1024) throw new DadiError('EINVAL', `mkfs: size ${sizeBytes} is too small (min 4 MiB)`);
  const groupCount = Math.ceil(blocksCount / BLOCKS_PER_GROUP);
  const perBlock = BLOCK_SIZE / INODE_SIZE;
  const inodes = Math.max(32, Math.floor((blocksCount * BLOCK_SIZE) / inodeRatio));
  let inodesPerGroup = Math.ceil(inodes / groupCount);
  inodesPerGroup = Math.min(BLOCK_SIZE * 8, Math.ceil(inodesPerGroup / perBlock) * perBlock);
  if (inodesPerGroup * groupCount > 0xffffffff) inodesPerGroup = Math.floor(0xffffffff / groupCount / 16) * 16;
  return {
    blocksCount,
    groupCount,
    inodesPerGroup,
    inodeTableBlocks: inodesPerGroup / perBlock,
    gdtBlocks: Math.ceil((groupCount * DESC_SIZE) / BLOCK_SIZE),
  };
}

/**
 * The filesystem's overhead as the kernel counts it (ext4_calculate_overhead without a journal or
 * bigalloc): per group its superblock and GDT copy (sparse_super groups), bitmaps and inode table.
 * Reserved GDT blocks are not counted (nor does the kernel). Stored in s_overhead_clusters: a rw
 * mount whose superblock holds another value rewrites it in the primary and every backup
 * superblock (ext4_update_overhead) — on a lazily fetched image, one dependent read and write per
 * backup on every container's start.
 */
export function overheadBlocks(geo: Geometry): number {
  let n = 0;
  for (let g = 0; g < geo.groupCount; g++) n += (hasSuper(g) ? 1 + geo.gdtBlocks : 0) + geo.inodeTableBlocks + 2;
  return n;
}

/** Blocks of group `g` (the last group may be short). */
export function groupBlocks(geo: Geometry, g: number): number {
  return Math.min(BLOCKS_PER_GROUP, geo.blocksCount - g * BLOCKS_PER_GROUP);
}

export interface GroupMeta {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
}

/** mkfs's placement of every group's bitmaps and inode table. */
export function placeMetadata(geo: Geometry): GroupMeta[] {
  const flex = 1 << LOG_GROUPS_PER_FLEX;
  const out: GroupMeta[] = [];
  for (let g0 = 0; g0 < geo.groupCount; g0 += flex) {
    const n = Math.min(flex, geo.groupCount - g0);
    const base = g0 * BLOCKS_PER_GROUP + (hasSuper(g0) ? 1 + geo.gdtBlocks : 0);
    const end = base + 2 * n + n * geo.inodeTableBlocks;
    if (end > g0 * BLOCKS_PER_GROUP + groupBlocks(geo, g0) - 8)
      throw new DadiError('EINVAL', `mkfs: group ${g0} too small for its flex group's metadata`);
    for (let i = 0; i < n; i++) {
      out.push({
        blockBitmap: base + i,
        inodeBitmap: base + n + i,
        inodeTable: base + 2 * n + i * geo.inodeTableBlocks,
      });
    }
  }
  return out;
}
