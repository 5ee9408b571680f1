// What a mount and a path walk of an ext4 will read, decided from the filesystem's own bytes in
// two steps without I/O: from the superblock and group descriptors, where the used inode tables
// (and, for a read-write mount, the backup superblocks) lie; from those inode tables, where every
// directory's blocks lie, plus each regular file's extents (for file-aware readahead). Pure; the
// reads are ext4-prefetch.ts. Sizes from the image are bounded before anything is allocated: a
// prefetch plan is a hint, so anything unusual (another block layout, meta_bg, block maps) yields
// less, never an error.

import {
  decodeSuperblock,
  EXT4_EXTENTS_FL,
  EXT4_INLINE_DATA_FL,
  EXT4_MAGIC,
  groupFreeInodes,
  groupInodeTable,
  I_BLOCK,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  SUPERBLOCK_OFFSET,
} from '../ext4/layout.js';

/** A byte range of the device. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** What the superblock and group descriptors say. */
export interface Ext4Geometry {
  blockSize: number;
  /** Bytes from the device start that hold the superblock and the group descriptor table. */
  headBytes: number;
  groupCount: number;
  inodesPerGroup: number;
  inodeSize: number;
  /** Groups carrying a backup superblock (sparse_super), group 0 excluded. */
  backupGroups: number[];
  blocksPerGroup: number;
  firstDataBlock: number;
  /** Where the group descriptor table starts, and each descriptor's size. */
  gdtStart: number;
  descSize: number;
  /**
   * s_overhead_clusters. 0: the kernel computes it at mount, and a read-write mount then writes
   * it into the primary and every backup superblock (ext4_update_overhead).
   */
  overheadClusters: number;
}

/** The used part of each group's inode table. */
export interface InodeTableRange extends ByteRange {
  /** The inode number of the table's first inode in this range. */
  firstIno: number;
}

const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const RO_COMPAT_SPARSE_SUPER = 0x1;
/** Group descriptor bytes read at most (16 Ki groups of 64 bytes: a 2 TiB filesystem). */
export const MAX_GDT_BYTES = 1 << 20;

/**
 * The geometry from the superblock (1024 bytes read at offset 1024), or undefined when the bytes
 * are not an ext4 superblock this plan understands.
 */
export function ext4Geometry(sbBytes: Uint8Array): Ext4Geometry | undefined {
  if (sbBytes.length < 1024) return undefined;
  const sb = decodeSuperblock(sbBytes);
  if (sb.magic !== EXT4_MAGIC || sb.logBlockSize > 6) return undefined;
  if (sb.featureIncompat & INCOMPAT_META_BG) return undefined;
  const blockSize = 1024 << sb.logBlockSize;
  if (!(sb.blocksPerGroup > 0 && sb.inodesPerGroup > 0 && sb.inodeSize >= 128 && sb.inodeSize <= blockSize)) {
    return undefined;
  }
  const groupCount = Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
  if (!(groupCount > 0)) return undefined;
  const descSize = sb.featureIncompat & INCOMPAT_64BIT ? sb.descSize : 32;
  if (descSize < 32 || descSize > blockSize) return undefined;
  const gdtStart = (sb.firstDataBlock + 1) * blockSize;
  const gdtBytes = Math.min(groupCount * descSize, MAX_GDT_BYTES);
  const sparse = (sb.featureRoCompat & RO_COMPAT_SPARSE_SUPER) !== 0;
  return {
    blockSize,
    headBytes: Math.max(SUPERBLOCK_OFFSET + 1024, gdtStart + Math.ceil(gdtBytes / blockSize) * blockSize),
    groupCount: Math.min(groupCount, Math.floor(gdtBytes / descSize)),
    inodesPerGroup: sb.inodesPerGroup,
    inodeSize: sb.inodeSize,
    backupGroups: backupGroupsOf(groupCount, sparse),
    blocksPerGroup: sb.blocksPerGroup,
    firstDataBlock: sb.firstDataBlock,
    gdtStart,
    descSize,
    overheadClusters: Buffer.from(sbBytes.buffer, sbBytes.byteOffset, 1024).readUInt32LE(S_OVERHEAD_CLUSTERS),
  };
}

/** Offset of s_overhead_clusters in the superblock. */
const S_OVERHEAD_CLUSTERS = 0x248;

/** At most this many backup superblocks are planned. */
const MAX_BACKUPS = 64;

/** Groups holding a backup superblock: 1 and the powers of 3, 5 and 7 with sparse_super, else every group. */
function backupGroupsOf(groupCount: number, sparse: boolean): number[] {
  if (!sparse) return Array.from({ length: Math.min(groupCount - 1, MAX_BACKUPS) }, (_, i) => i + 1);
  const out = new Set<number>(groupCount > 1 ? [1] : []);
  for (const p of [3, 5, 7]) for (let g = p; g < groupCount; g *= p) out.add(g);
  return [...out].sort((a, b) => a - b).slice(0, MAX_BACKUPS);
}

/** The first block of each backup group: what a read-write mount of this kernel reads besides group 0. */
export function backupSuperblocks(geo: Ext4Geometry): ByteRange[] {
  return geo.backupGroups.map((g) => ({
    offset: (geo.firstDataBlock + g * geo.blocksPerGroup) * geo.blockSize,
    length: geo.blockSize,
  }));
}

/**
 * The used part of every group's inode table, from the descriptors in `head` (the device's first
 * `geo.headBytes`): inodes are taken as allocated from the start of each table (how mkfs-style
 * writers and converters allocate), `inodesPerGroup − free` of them. At most `maxBytes` in all,
 * lowest groups first (the root directory lives in group 0).
 */
export function usedInodeTables(geo: Ext4Geometry, head: Uint8Array, maxBytes: number): InodeTableRange[] {
  // The two fields read in place (groupFreeInodes, groupInodeTable), not through decodeGroupDesc's
  // object of every field: an image has hundreds to thousands of groups, most of them empty.
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const out: InodeTableRange[] = [];
  let budget = maxBytes;
  for (let g = 0; g < geo.groupCount && budget > 0; g++) {
    const at = geo.gdtStart + g * geo.descSize;
    if (at + geo.descSize > head.length) break;
    const used = geo.inodesPerGroup - Math.min(groupFreeInodes(dv, at, geo.descSize), geo.inodesPerGroup);
    if (used <= 0) continue;
    const inodeTable = groupInodeTable(dv, at, geo.descSize);
    if (inodeTable === 0) continue;
    const bytes = Math.min(Math.ceil((used * geo.inodeSize) / geo.blockSize) * geo.blockSize, budget);
    out.push({ offset: inodeTable * geo.blockSize, length: bytes, firstIno: g * geo.inodesPerGroup + 1 });
    budget -= bytes;
  }
  return out;
}

/** A regular file's data extent: device bytes, its inode and first file block. */
export interface FileExtent extends ByteRange {
  ino: number;
  lblk: number;
}

/** What the inode tables say about where directories and files keep their blocks. */
export interface InodeScan {
  /** Directory blocks (in-inode extent roots). */
  dirBlocks: ByteRange[];
  /** Directories whose extent tree has index blocks: their i_block, to walk with reads. */
  dirTrees: { ino: number; iblock: Uint8Array }[];
  /** Extent tree blocks of regular files (what the kernel reads before the file's data). */
  fileTreeBlocks: ByteRange[];
  /** Regular files' data extents (in-inode roots), device bytes; sorted by offset. */
  fileExtents: FileExtent[];
}

/**
 * Scan inode table bytes `table` (a range from usedInodeTables, whose first inode is `firstIno`)
 * for directories and files, adding to `into`.
 */
export function scanInodes(geo: Ext4Geometry, table: Uint8Array, firstIno: number, into: InodeScan): InodeScan {
  // Each inode's extent root is decoded in place (decodeExtentNode's checks, without its
  // allocations): a start scans every used inode of the image (5,000-20,000) on the daemon's one
  // thread while the kernel mounts the filesystem, and the allocating version took 10-25 ms of it.
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const bs = geo.blockSize;
  for (let off = 0, i = 0; off + geo.inodeSize <= table.length; off += geo.inodeSize, i++) {
    const kind = dv.getUint16(off, true) & S_IFMT;
    if ((kind !== S_IFDIR && kind !== S_IFREG) || dv.getUint16(off + 0x1a, true) === 0) continue;
    const flags = dv.getUint32(off + 0x20, true);
    if (flags & EXT4_INLINE_DATA_FL || !(flags & EXT4_EXTENTS_FL)) continue;
    const root = off + I_BLOCK;
    if (dv.getUint16(root, true) !== EXTENT_MAGIC) continue;
    const count = dv.getUint16(root + 2, true);
    const depth = dv.getUint16(root + 6, true);
    if (12 + count * 12 > I_BLOCK_BYTES || depth > 5) continue;
    if (depth > 0) {
      if (kind === S_IFDIR) {
        into.dirTrees.push({
          ino: firstIno + i,
          iblock: Uint8Array.prototype.slice.call(table, root, root + I_BLOCK_BYTES),
        });
        continue;
      }
      for (let k = 0, o = root + 12; k < count; k++, o += 12) {
        const pblk = dv.getUint32(o + 4, true) + dv.getUint16(o + 8, true) * 0x1_0000_0000;
        into.fileTreeBlocks.push({ offset: pblk * bs, length: bs });
      }
      continue;
    }
    for (let k = 0, o = root + 12; k < count; k++, o += 12) {
      const len = dv.getUint16(o + 4, true);
      // Unwritten extents read as zeros: nothing to fetch.
      if (len > MAX_EXTENT_LEN) continue;
      const offset = (dv.getUint32(o + 8, true) + dv.getUint16(o + 6, true) * 0x1_0000_0000) * bs;
      if (kind === S_IFDIR) into.dirBlocks.push({ offset, length: len * bs });
      else into.fileExtents.push({ offset, length: len * bs, ino: firstIno + i, lblk: dv.getUint32(o, true) });
    }
  }
  return into;
}

/** The extent tree root in an inode's i_block. */
const I_BLOCK_BYTES = 60;

export function emptyScan(): InodeScan {
  return { dirBlocks: [], dirTrees: [], fileTreeBlocks: [], fileExtents: [] };
}

const EXTENT_MAGIC = 0xf30a;
const MAX_EXTENT_LEN = 32768;

/** One extent tree node: leaf extents (depth 0) or child blocks (index, `len` 1). Undefined if malformed. */
export function decodeExtentNode(
  node: Uint8Array,
): { depth: number; entries: { lblk: number; pblk: number; len: number }[] } | undefined {
  if (node.length < 12) return undefined;
  const dv = new DataView(node.buffer, node.byteOffset, node.byteLength);
  if (dv.getUint16(0, true) !== EXTENT_MAGIC) return undefined;
  const count = dv.getUint16(2, true);
  const depth = dv.getUint16(6, true);
  if (12 + count * 12 > node.length || depth > 5) return undefined;
  const entries: { lblk: number; pblk: number; len: number }[] = [];
  for (let i = 0; i < count; i++) {
    const o = 12 + i * 12;
    if (depth === 0) {
      const raw = dv.getUint16(o + 4, true);
      // Unwritten extents read as zeros: nothing to fetch.
      if (raw > MAX_EXTENT_LEN) continue;
      entries.push({
        lblk: dv.getUint32(o, true),
        pblk: dv.getUint32(o + 8, true) + dv.getUint16(o + 6, true) * 0x1_0000_0000,
        len: raw,
      });
    } else {
      entries.push({
        lblk: dv.getUint32(o, true),
        pblk: dv.getUint32(o + 4, true) + dv.getUint16(o + 8, true) * 0x1_0000_0000,
        len: 1,
      });
    }
  }
  return { depth, entries };
}

/**
 * Sort and merge ranges that overlap or lie at most `gap` bytes apart (reading a small gap costs
 * less than another request); no merged range grows beyond `maxRange`. Stops at `maxBytes` in all.
 */
export function coalesce(ranges: readonly ByteRange[], gap: number, maxRange: number, maxBytes: number): ByteRange[] {
  const sorted = [...ranges].filter((r) => r.length > 0).sort((a, b) => a.offset - b.offset);
  const out: ByteRange[] = [];
  let total = 0;
  for (const r of sorted) {
    const last = out[out.length - 1];
    const end = r.offset + r.length;
    if (last && r.offset <= last.offset + last.length + gap && end - last.offset <= maxRange) {
      const grown = Math.max(end, last.offset + last.length) - last.offset;
      total += grown - last.length;
      last.length = grown;
    } else {
      out.push({ offset: r.offset, length: r.length });
      total += r.length;
    }
    if (total >= maxBytes) break;
  }
  return out;
}
