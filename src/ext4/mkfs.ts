// mkfs: write an empty ext4 (the reference feature set: 4 KiB blocks, 256-byte inodes, no journal,
// extents, 64bit, flex_bg, dir_index, sparse_super, ...) with root and lost+found onto a writable
// BlockFile. Deterministic (zero uuid, hash seed and times unless given); never writes inode tables
// or all-zero bitmaps, so on a sparse layer only ~0.3% of a 64 GiB disk's blocks become data.

import type { WritableBlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import { encodeDirBlocks } from './dirent.js';
import { buildExtentTree } from './extent.js';
import {
  BLOCKS_PER_GROUP,
  computeGeometry,
  type Geometry,
  type GroupMeta,
  groupBlocks,
  hasSuper,
  overheadBlocks,
  placeMetadata,
} from './geometry.js';
import {
  BLOCK_SIZE,
  DESC_SIZE,
  EXT4_EXTENTS_FL,
  EXT4_MAGIC,
  EXTRA_ISIZE,
  encodeGroupDesc,
  encodeInode,
  encodeSuperblock,
  FEATURES,
  FIRST_INO,
  type GroupDesc,
  INODE_SIZE,
  initSuperblockRaw,
  LOG_GROUPS_PER_FLEX,
  newInode,
  ROOT_INO,
  S_IFDIR,
  SUPERBLOCK_OFFSET,
  type Superblock,
} from './layout.js';
import { writeBlocks } from './metadata-cache.js';

export const DEFAULT_SIZE = 64 * 1024 ** 3;
export const LOST_FOUND_INO = 11;

export interface MkfsOptions {
  /** Filesystem size in bytes (default 64 GiB; rounded down to 4 KiB). The file need not be that big. */
  size?: number;
  /** 16-byte filesystem uuid (default all zero, as the reference). */
  uuid?: Uint8Array;
  /** 16-byte directory hash seed (default all zero). */
  hashSeed?: Uint8Array;
  /** Seconds since the epoch for every timestamp (default 0). */
  time?: number;
  /** Volume label (≤ 16 bytes). */
  label?: string;
  /** Bytes per inode (default 16384). */
  inodeRatio?: number;
}

/** Set bits [from, from + count) of `bm`: whole bytes at once (inode tables are thousands of blocks). */
function setBits(bm: Uint8Array, from: number, count: number): void {
  const end = from + count;
  let i = from;
  for (; i < end && i & 7; i++) bm[i >> 3]! |= 1 << (i & 7);
  if (end - i >= 8) {
    bm.fill(0xff, i >> 3, end >> 3);
    i = end & ~7;
  }
  for (; i < end; i++) bm[i >> 3]! |= 1 << (i & 7);
}

/**
 * Make an empty filesystem on `file`.
 * @example await mkfs(layer, { size: 64 * 1024 ** 3 });
 */
export async function mkfs(file: WritableBlockFile, opts: MkfsOptions = {}): Promise<void> {
  const size = opts.size ?? DEFAULT_SIZE;
  const time = opts.time ?? 0;
  const geo: Geometry = computeGeometry(size, opts.inodeRatio ?? 16384);
  const meta: GroupMeta[] = placeMetadata(geo);
  const writes = new Map<number, Uint8Array>();
  const label = Buffer.from(opts.label ?? '', 'utf8');
  if (label.length > 16) throw new DadiError('EINVAL', `mkfs: label longer than 16 bytes`);
  for (const [k, v] of [
    ['uuid', opts.uuid],
    ['hashSeed', opts.hashSeed],
  ] as const)
    if (v && v.length !== 16) throw new DadiError('EINVAL', `mkfs: ${k} must be 16 bytes`);

  // Used blocks per group, as runs [first block, count]: backups, flex metadata, then root and
  // lost+found in group 0. (Runs, not blocks: a 64 GiB disk has 262 144 inode table blocks.)
  const used: [number, number][][] = Array.from({ length: geo.groupCount }, () => []);
  const usedCount = new Array<number>(geo.groupCount).fill(0);
  const markUsed = (blk: number, count: number) => {
    while (count > 0) {
      const g = Math.floor(blk / BLOCKS_PER_GROUP);
      const take = Math.min(count, (g + 1) * BLOCKS_PER_GROUP - blk);
      used[g]!.push([blk, take]);
      usedCount[g]! += take;
      blk += take;
      count -= take;
    }
  };
  for (let g = 0; g < geo.groupCount; g++) if (hasSuper(g)) markUsed(g * BLOCKS_PER_GROUP, 1 + geo.gdtBlocks);
  for (const m of meta) {
    markUsed(m.blockBitmap, 1);
    markUsed(m.inodeBitmap, 1);
    markUsed(m.inodeTable, geo.inodeTableBlocks);
  }
  const firstFree = Math.max(...used[0]!.map(([b, n]) => b + n));
  const rootBlk = firstFree;
  const lfBlk = firstFree + 1;
  markUsed(rootBlk, 1);
  markUsed(lfBlk, 4);

  // Block bitmaps (only non-zero ones are written).
  const descs: GroupDesc[] = [];
  let freeBlocks = 0;
  for (let g = 0; g < geo.groupCount; g++) {
    const n = groupBlocks(geo, g);
    if (usedCount[g]! > 0 || n < BLOCKS_PER_GROUP) {
      const bm = new Uint8Array(BLOCK_SIZE);
      const start = g * BLOCKS_PER_GROUP;
      for (const [b, count] of used[g]!) setBits(bm, b - start, count);
      setBits(bm, n, BLOCKS_PER_GROUP - n); // padding past the end of the last group
      writes.set(meta[g]!.blockBitmap, bm);
    }
    const free = n - usedCount[g]!;
    freeBlocks += free;
    descs.push({
      ...meta[g]!,
      freeBlocks: free,
      freeInodes: geo.inodesPerGroup,
      usedDirs: 0,
      flags: 0,
    });
  }
  // Inode bitmaps: every group needs its padding bits set (one block shared by all groups but the first).
  const ipgBytes = geo.inodesPerGroup / 8;
  const padding = new Uint8Array(BLOCK_SIZE).fill(0xff, ipgBytes);
  for (let g = 0; g < geo.groupCount; g++) {
    if (ipgBytes >= BLOCK_SIZE && g !== 0) continue; // all zero: not written
    const bm = g === 0 ? padding.slice() : padding;
    if (g === 0) setBits(bm, 0, FIRST_INO);
    writes.set(meta[g]!.inodeBitmap, bm);
  }
  descs[0]!.freeInodes -= FIRST_INO;
  descs[0]!.usedDirs = 2;

  // Root and lost+found.
  const t = { sec: time, nsec: 0 };
  const itab = new Uint8Array(BLOCK_SIZE);
  const root = newInode(S_IFDIR | 0o755, t);
  root.links = 3;
  root.size = BLOCK_SIZE;
  root.blocks = 8;
  root.flags = EXT4_EXTENTS_FL;
  root.iblock = buildExtentTree([{ lblk: 0, pblk: rootBlk, len: 1 }], []).root;
  const lf = newInode(S_IFDIR | 0o700, t);
  lf.links = 2;
  lf.size = 4 * BLOCK_SIZE;
  lf.blocks = 32;
  lf.flags = EXT4_EXTENTS_FL;
  lf.iblock = buildExtentTree([{ lblk: 0, pblk: lfBlk, len: 4 }], []).root;
  encodeInode(root, itab, (ROOT_INO - 1) * INODE_SIZE, INODE_SIZE);
  encodeInode(lf, itab, (LOST_FOUND_INO - 1) * INODE_SIZE, INODE_SIZE);
  writes.set(meta[0]!.inodeTable, itab);
  writes.set(
    rootBlk,
    encodeDirBlocks([
      { name: '.', ino: ROOT_INO, type: 2 },
      { name: '..', ino: ROOT_INO, type: 2 },
      { name: 'lost+found', ino: LOST_FOUND_INO, type: 2 },
    ])[0]!,
  );
  const lfDir = encodeDirBlocks([
    { name: '.', ino: LOST_FOUND_INO, type: 2 },
    { name: '..', ino: ROOT_INO, type: 2 },
  ])[0]!;
  writes.set(lfBlk, lfDir);
  for (let i = 1; i < 4; i++) writes.set(lfBlk + i, encodeDirBlocks([])[0]!);

  // Superblock and group descriptors, primary and backups.
  const raw = new Uint8Array(1024);
  initSuperblockRaw(raw, overheadBlocks(geo));
  const sb: Superblock = {
    inodesCount: geo.inodesPerGroup * geo.groupCount,
    blocksCount: geo.blocksCount,
    rBlocksCount: Math.floor(geo.blocksCount * 0.05),
    freeBlocksCount: freeBlocks,
    freeInodesCount: geo.inodesPerGroup * geo.groupCount - FIRST_INO,
    firstDataBlock: 0,
    logBlockSize: 2,
    blocksPerGroup: BLOCKS_PER_GROUP,
    inodesPerGroup: geo.inodesPerGroup,
    wtime: time,
    mtime: 0,
    lastcheck: time,
    mkfsTime: time,
    magic: EXT4_MAGIC,
    state: 1,
    revLevel: 1,
    firstIno: FIRST_INO,
    inodeSize: INODE_SIZE,
    featureCompat: FEATURES.compat,
    featureIncompat: FEATURES.incompat,
    featureRoCompat: FEATURES.roCompat,
    defHashVersion: 1, // half_md4
    descSize: DESC_SIZE,
    minExtraIsize: EXTRA_ISIZE,
    wantExtraIsize: EXTRA_ISIZE,
    flags: 1, // signed directory hash
    logGroupsPerFlex: LOG_GROUPS_PER_FLEX,
    uuid: opts.uuid ?? new Uint8Array(16),
    volumeName: (() => {
      const v = new Uint8Array(16);
      v.set(label);
      return v;
    })(),
    hashSeed: opts.hashSeed ?? new Uint8Array(16),
    raw,
  };
  const gdt = new Uint8Array(geo.gdtBlocks * BLOCK_SIZE);
  for (let g = 0; g < descs.length; g++) encodeGroupDesc(descs[g]!, gdt, g * DESC_SIZE);
  for (let g = 0; g < geo.groupCount; g++) {
    if (!hasSuper(g)) continue;
    const first = g * BLOCKS_PER_GROUP;
    const b0 = new Uint8Array(BLOCK_SIZE);
    b0.set(encodeSuperblock(sb, g), g === 0 ? SUPERBLOCK_OFFSET : 0);
    writes.set(first, b0);
    for (let i = 0; i < geo.gdtBlocks; i++)
      writes.set(first + 1 + i, gdt.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
  }
  await writeBlocks(file, writes);
}
