// The ext4 on-disk structures this package reads and writes: superblock, group descriptor and
// inode, each described once as a table of [offset, width] fields and coded by one decode/encode pair.
// Only the feature set of the reference (no journal, no checksums, 64bit, extents, flex_bg) is modelled.

export const BLOCK_SIZE = 4096;
export const SUPERBLOCK_OFFSET = 1024;
export const EXT4_MAGIC = 0xef53;
export const INODE_SIZE = 256;
export const GOOD_OLD_INODE_SIZE = 128;
export const EXTRA_ISIZE = 32;
export const DESC_SIZE = 64;
export const ROOT_INO = 2;
export const FIRST_INO = 11;
export const LOG_GROUPS_PER_FLEX = 4;

export const COMPAT_EXT_ATTR = 0x8;
export const COMPAT_DIR_INDEX = 0x20;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_FLEX_BG = 0x200;
export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_LARGE_FILE = 0x2;
export const RO_COMPAT_HUGE_FILE = 0x8;
export const RO_COMPAT_DIR_NLINK = 0x20;
export const RO_COMPAT_EXTRA_ISIZE = 0x40;

/** Features this implementation writes (and the only incompat ones it accepts when writing). */
export const FEATURES = {
  compat: COMPAT_EXT_ATTR | COMPAT_DIR_INDEX,
  incompat: INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG,
  roCompat:
    RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_HUGE_FILE | RO_COMPAT_DIR_NLINK | RO_COMPAT_EXTRA_ISIZE,
} as const;

// Inode flags.
export const EXT4_INDEX_FL = 0x1000;
export const EXT4_HUGE_FILE_FL = 0x40000;
export const EXT4_EXTENTS_FL = 0x80000;
export const EXT4_INLINE_DATA_FL = 0x10000000;

// File type bits of i_mode and the directory entry file_type codes.
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** ext4 dirent file_type from an i_mode. */
export function direntType(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 1;
    case S_IFDIR:
      return 2;
    case S_IFCHR:
      return 3;
    case S_IFBLK:
      return 4;
    case S_IFIFO:
      return 5;
    case S_IFSOCK:
      return 6;
    case S_IFLNK:
      return 7;
    default:
      return 0;
  }
}

type Width = 1 | 2 | 4;
type Schema = Record<string, readonly [offset: number, width: Width]>;

function decodeFields<S extends Schema>(schema: S, b: Uint8Array, base = 0): { [K in keyof S]: number } {
  const dv = new DataView(b.buffer, b.byteOffset + base);
  const out = {} as Record<string, number>;
  for (const k in schema) {
    const [o, w] = schema[k]!;
    out[k] = w === 1 ? dv.getUint8(o) : w === 2 ? dv.getUint16(o, true) : dv.getUint32(o, true);
  }
  return out as { [K in keyof S]: number };
}

function encodeFields<S extends Schema>(schema: S, v: { [K in keyof S]: number }, b: Uint8Array, base = 0): void {
  const dv = new DataView(b.buffer, b.byteOffset + base);
  for (const k in schema) {
    const [o, w] = schema[k]!;
    const x = v[k] >>> 0;
    if (w === 1) dv.setUint8(o, x & 0xff);
    else if (w === 2) dv.setUint16(o, x & 0xffff, true);
    else dv.setUint32(o, x, true);
  }
}

/** Superblock fields (offsets within the 1024-byte superblock). Byte arrays are handled apart. */
const SB = {
  inodesCount: [0x0, 4],
  blocksCountLo: [0x4, 4],
  rBlocksCountLo: [0x8, 4],
  freeBlocksCountLo: [0xc, 4],
  freeInodesCount: [0x10, 4],
  firstDataBlock: [0x14, 4],
  logBlockSize: [0x18, 4],
  logClusterSize: [0x1c, 4],
  blocksPerGroup: [0x20, 4],
  clustersPerGroup: [0x24, 4],
  inodesPerGroup: [0x28, 4],
  mtime: [0x2c, 4],
  wtime: [0x30, 4],
  mntCount: [0x34, 2],
  maxMntCount: [0x36, 2],
  magic: [0x38, 2],
  state: [0x3a, 2],
  errors: [0x3c, 2],
  minorRevLevel: [0x3e, 2],
  lastcheck: [0x40, 4],
  checkinterval: [0x44, 4],
  creatorOs: [0x48, 4],
  revLevel: [0x4c, 4],
  defResuid: [0x50, 2],
  defResgid: [0x52, 2],
  firstIno: [0x54, 4],
  inodeSize: [0x58, 2],
  blockGroupNr: [0x5a, 2],
  featureCompat: [0x5c, 4],
  featureIncompat: [0x60, 4],
  featureRoCompat: [0x64, 4],
  defHashVersion: [0xfc, 1],
  descSize: [0xfe, 2],
  defaultMountOpts: [0x100, 4],
  firstMetaBg: [0x104, 4],
  mkfsTime: [0x108, 4],
  blocksCountHi: [0x150, 4],
  rBlocksCountHi: [0x154, 4],
  freeBlocksCountHi: [0x158, 4],
  minExtraIsize: [0x15c, 2],
  wantExtraIsize: [0x15e, 2],
  flags: [0x160, 4],
  logGroupsPerFlex: [0x174, 1],
  overheadClusters: [0x248, 4],
} as const satisfies Schema;

export const SB_UUID = 0x68;
export const SB_VOLUME_NAME = 0x78;
export const SB_HASH_SEED = 0xec;

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  rBlocksCount: number;
  freeBlocksCount: number;
  freeInodesCount: number;
  firstDataBlock: number;
  logBlockSize: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  wtime: number;
  mtime: number;
  lastcheck: number;
  mkfsTime: number;
  magic: number;
  state: number;
  revLevel: number;
  firstIno: number;
  inodeSize: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  defHashVersion: number;
  descSize: number;
  minExtraIsize: number;
  wantExtraIsize: number;
  flags: number;
  logGroupsPerFlex: number;
  uuid: Uint8Array;
  volumeName: Uint8Array;
  hashSeed: Uint8Array;
  /** The 1024 raw bytes it was decoded from (fields not modelled are preserved on encode). */
  raw: Uint8Array;
}

const hi = 0x1_0000_0000;

export function decodeSuperblock(raw: Uint8Array): Superblock {
  const f = decodeFields(SB, raw);
  return {
    inodesCount: f.inodesCount,
    blocksCount: f.blocksCountLo + f.blocksCountHi * hi,
    rBlocksCount: f.rBlocksCountLo + f.rBlocksCountHi * hi,
    freeBlocksCount: f.freeBlocksCountLo + f.freeBlocksCountHi * hi,
    freeInodesCount: f.freeInodesCount,
    firstDataBlock: f.firstDataBlock,
    logBlockSize: f.logBlockSize,
    blocksPerGroup: f.blocksPerGroup,
    inodesPerGroup: f.inodesPerGroup,
    wtime: f.wtime,
    mtime: f.mtime,
    lastcheck: f.lastcheck,
    mkfsTime: f.mkfsTime,
    magic: f.magic,
    state: f.state,
    revLevel: f.revLevel,
    firstIno: f.firstIno,
    inodeSize: f.inodeSize,
    featureCompat: f.featureCompat,
    featureIncompat: f.featureIncompat,
    featureRoCompat: f.featureRoCompat,
    defHashVersion: f.defHashVersion,
    descSize: f.descSize,
    minExtraIsize: f.minExtraIsize,
    wantExtraIsize: f.wantExtraIsize,
    flags: f.flags,
    logGroupsPerFlex: f.logGroupsPerFlex,
    uuid: raw.slice(SB_UUID, SB_UUID + 16),
    volumeName: raw.slice(SB_VOLUME_NAME, SB_VOLUME_NAME + 16),
    hashSeed: raw.slice(SB_HASH_SEED, SB_HASH_SEED + 16),
    raw: raw.slice(0, 1024),
  };
}

/** Encode `sb` over a copy of its raw bytes; `groupNr` is stored in s_block_group_nr (backups). */
export function encodeSuperblock(sb: Superblock, groupNr = 0): Uint8Array {
  const out = sb.raw.slice(0, 1024);
  const cur = decodeFields(SB, out);
  encodeFields(
    SB,
    {
      ...cur,
      inodesCount: sb.inodesCount,
      blocksCountLo: sb.blocksCount % hi,
      blocksCountHi: Math.floor(sb.blocksCount / hi),
      rBlocksCountLo: sb.rBlocksCount % hi,
      rBlocksCountHi: Math.floor(sb.rBlocksCount / hi),
      freeBlocksCountLo: sb.freeBlocksCount % hi,
      freeBlocksCountHi: Math.floor(sb.freeBlocksCount / hi),
      freeInodesCount: sb.freeInodesCount,
      firstDataBlock: sb.firstDataBlock,
      logBlockSize: sb.logBlockSize,
      blocksPerGroup: sb.blocksPerGroup,
      inodesPerGroup: sb.inodesPerGroup,
      wtime: sb.wtime,
      mtime: sb.mtime,
      lastcheck: sb.lastcheck,
      mkfsTime: sb.mkfsTime,
      magic: sb.magic,
      state: sb.state,
      revLevel: sb.revLevel,
      firstIno: sb.firstIno,
      inodeSize: sb.inodeSize,
      blockGroupNr: groupNr,
      featureCompat: sb.featureCompat,
      featureIncompat: sb.featureIncompat,
      featureRoCompat: sb.featureRoCompat,
      defHashVersion: sb.defHashVersion,
      descSize: sb.descSize,
      minExtraIsize: sb.minExtraIsize,
      wantExtraIsize: sb.wantExtraIsize,
      flags: sb.flags,
      logGroupsPerFlex: sb.logGroupsPerFlex,
    },
    out,
  );
  out.set(sb.uuid, SB_UUID);
  out.set(sb.volumeName, SB_VOLUME_NAME);
  out.set(sb.hashSeed, SB_HASH_SEED);
  return out;
}

/**
 * Set the superblock fields mkfs needs that the model leaves alone (written once); `overhead`:
 * s_overhead_clusters (geometry.ts overheadBlocks).
 */
export function initSuperblockRaw(raw: Uint8Array, overhead: number): void {
  const v = decodeFields(SB, raw);
  encodeFields(
    SB,
    {
      ...v,
      logClusterSize: 2,
      clustersPerGroup: 32768,
      maxMntCount: 0xffff,
      errors: 1,
      creatorOs: 0,
      defaultMountOpts: 0x000c, // user_xattr | acl
      overheadClusters: overhead,
    },
    raw,
  );
}

/** Group descriptor (64 bytes with 64bit). */
const GD = {
  blockBitmapLo: [0x0, 4],
  inodeBitmapLo: [0x4, 4],
  inodeTableLo: [0x8, 4],
  freeBlocksLo: [0xc, 2],
  freeInodesLo: [0xe, 2],
  usedDirsLo: [0x10, 2],
  flags: [0x12, 2],
  itableUnusedLo: [0x1c, 2],
  checksum: [0x1e, 2],
  blockBitmapHi: [0x20, 4],
  inodeBitmapHi: [0x24, 4],
  inodeTableHi: [0x28, 4],
  freeBlocksHi: [0x2c, 2],
  freeInodesHi: [0x2e, 2],
  usedDirsHi: [0x30, 2],
  itableUnusedHi: [0x32, 2],
} as const satisfies Schema;

export interface GroupDesc {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
}

export function decodeGroupDesc(b: Uint8Array, off: number, descSize: number): GroupDesc {
  const f = decodeFields(GD, b, off);
  const wide = descSize >= 64;
  return {
    blockBitmap: f.blockBitmapLo + (wide ? f.blockBitmapHi * hi : 0),
    inodeBitmap: f.inodeBitmapLo + (wide ? f.inodeBitmapHi * hi : 0),
    inodeTable: f.inodeTableLo + (wide ? f.inodeTableHi * hi : 0),
    freeBlocks: f.freeBlocksLo + (wide ? f.freeBlocksHi * 0x10000 : 0),
    freeInodes: f.freeInodesLo + (wide ? f.freeInodesHi * 0x10000 : 0),
    usedDirs: f.usedDirsLo + (wide ? f.usedDirsHi * 0x10000 : 0),
    flags: f.flags,
  };
}

/**
 * A group descriptor's inode table block, read in place from `dv` (the descriptor at byte `off`):
 * for plans that look at every group of an image (hundreds to thousands, most of them empty) on a
 * mount's path, where decodeGroupDesc's object of every field costs more than the plan itself.
 */
export function groupInodeTable(dv: DataView, off: number, descSize: number): number {
  const lo = dv.getUint32(off + GD.inodeTableLo[0], true);
  return descSize >= 64 ? lo + dv.getUint32(off + GD.inodeTableHi[0], true) * hi : lo;
}

/** A group descriptor's free inode count, read in place as groupInodeTable. */
export function groupFreeInodes(dv: DataView, off: number, descSize: number): number {
  const lo = dv.getUint16(off + GD.freeInodesLo[0], true);
  return descSize >= 64 ? lo + dv.getUint16(off + GD.freeInodesHi[0], true) * 0x10000 : lo;
}

export function encodeGroupDesc(g: GroupDesc, b: Uint8Array, off: number): void {
  encodeFields(
    GD,
    {
      blockBitmapLo: g.blockBitmap % hi,
      inodeBitmapLo: g.inodeBitmap % hi,
      inodeTableLo: g.inodeTable % hi,
      freeBlocksLo: g.freeBlocks & 0xffff,
      freeInodesLo: g.freeInodes & 0xffff,
      usedDirsLo: g.usedDirs & 0xffff,
      flags: g.flags,
      itableUnusedLo: 0,
      checksum: 0,
      blockBitmapHi: Math.floor(g.blockBitmap / hi),
      inodeBitmapHi: Math.floor(g.inodeBitmap / hi),
      inodeTableHi: Math.floor(g.inodeTable / hi),
      freeBlocksHi: g.freeBlocks >>> 16,
      freeInodesHi: g.freeInodes >>> 16,
      usedDirsHi: g.usedDirs >>> 16,
      itableUnusedHi: 0,
    },
    b,
    off,
  );
}

/** Inode fields (256-byte inodes with i_extra_isize 32). i_block (60 bytes at 0x28) is handled apart. */
const INO = {
  mode: [0x0, 2],
  uidLo: [0x2, 2],
  sizeLo: [0x4, 4],
  atime: [0x8, 4],
  ctime: [0xc, 4],
  mtime: [0x10, 4],
  dtime: [0x14, 4],
  gidLo: [0x18, 2],
  linksCount: [0x1a, 2],
  blocksLo: [0x1c, 4],
  flags: [0x20, 4],
  generation: [0x64, 4],
  fileAclLo: [0x68, 4],
  sizeHi: [0x6c, 4],
  blocksHi: [0x74, 2],
  fileAclHi: [0x76, 2],
  uidHi: [0x78, 2],
  gidHi: [0x7a, 2],
  extraIsize: [0x80, 2],
  ctimeExtra: [0x84, 4],
  mtimeExtra: [0x88, 4],
  atimeExtra: [0x8c, 4],
  crtime: [0x90, 4],
  crtimeExtra: [0x94, 4],
} as const satisfies Schema;

export const I_BLOCK = 0x28;
export const I_BLOCK_SIZE = 60;

/** A timestamp: seconds since the epoch (may be negative) and nanoseconds. */
export interface Time {
  sec: number;
  nsec: number;
}

export interface Inode {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atime: Time;
  ctime: Time;
  mtime: Time;
  crtime: Time;
  dtime: number;
  links: number;
  /** i_blocks in 512-byte units (huge_file's per-fs-block unit is decoded into this). */
  blocks: number;
  flags: number;
  generation: number;
  fileAcl: number;
  extraIsize: number;
  /** i_block: extent root, fast symlink target or device number (60 bytes). */
  iblock: Uint8Array;
  /** In-inode xattr area (bytes after 128 + extraIsize), kept raw. */
  xattrArea: Uint8Array;
}

function decodeTime(lo: number, extra: number | undefined): Time {
  const sec = lo | 0;
  if (extra === undefined) return { sec, nsec: 0 };
  return { sec: sec + (extra & 3) * hi, nsec: extra >>> 2 };
}

function encodeTime(t: Time): [lo: number, extra: number] {
  const lo = t.sec | 0; // low 32 bits, signed
  const epoch = Math.round((t.sec - lo) / hi) & 3;
  return [lo >>> 0, ((t.nsec << 2) | epoch) >>> 0];
}

export function decodeInode(b: Uint8Array, off: number, inodeSize: number): Inode {
  const f = decodeFields(INO, b, off);
  const extraIsize = inodeSize > GOOD_OLD_INODE_SIZE ? f.extraIsize : 0;
  const has = (fieldEnd: number) => GOOD_OLD_INODE_SIZE + extraIsize >= fieldEnd;
  let blocks = f.blocksLo + f.blocksHi * hi;
  if (f.flags & EXT4_HUGE_FILE_FL) blocks *= 8;
  return {
    mode: f.mode,
    uid: f.uidLo | (f.uidHi << 16),
    gid: f.gidLo | (f.gidHi << 16),
    size: f.sizeLo + f.sizeHi * hi,
    atime: decodeTime(f.atime, has(0x90) ? f.atimeExtra : undefined),
    ctime: decodeTime(f.ctime, has(0x88) ? f.ctimeExtra : undefined),
    mtime: decodeTime(f.mtime, has(0x8c) ? f.mtimeExtra : undefined),
    crtime: has(0x98) ? decodeTime(f.crtime, f.crtimeExtra) : { sec: 0, nsec: 0 },
    dtime: f.dtime,
    links: f.linksCount,
    blocks,
    flags: f.flags,
    generation: f.generation,
    fileAcl: f.fileAclLo + f.fileAclHi * hi,
    extraIsize,
    iblock: b.slice(off + I_BLOCK, off + I_BLOCK + I_BLOCK_SIZE),
    xattrArea: b.slice(off + GOOD_OLD_INODE_SIZE + extraIsize, off + inodeSize),
  };
}

/** Encode into `b` at `off` (inodeSize bytes, fully overwritten). Always writes extra_isize 32. */
export function encodeInode(i: Inode, b: Uint8Array, off: number, inodeSize: number): void {
  b.fill(0, off, off + inodeSize);
  const [at, atx] = encodeTime(i.atime);
  const [ct, ctx] = encodeTime(i.ctime);
  const [mt, mtx] = encodeTime(i.mtime);
  const [crt, crtx] = encodeTime(i.crtime);
  encodeFields(
    INO,
    {
      mode: i.mode,
      uidLo: i.uid & 0xffff,
      sizeLo: i.size % hi,
      atime: at,
      ctime: ct,
      mtime: mt,
      dtime: i.dtime,
      gidLo: i.gid & 0xffff,
      linksCount: i.links,
      blocksLo: i.blocks % hi,
      flags: i.flags & ~EXT4_HUGE_FILE_FL,
      generation: i.generation,
      fileAclLo: i.fileAcl % hi,
      sizeHi: Math.floor(i.size / hi),
      blocksHi: Math.floor(i.blocks / hi),
      fileAclHi: Math.floor(i.fileAcl / hi),
      uidHi: i.uid >>> 16,
      gidHi: i.gid >>> 16,
      extraIsize: EXTRA_ISIZE,
      ctimeExtra: ctx,
      mtimeExtra: mtx,
      atimeExtra: atx,
      crtime: crt,
      crtimeExtra: crtx,
    },
    b,
    off,
  );
  b.set(i.iblock.subarray(0, I_BLOCK_SIZE), off + I_BLOCK);
  const area = off + GOOD_OLD_INODE_SIZE + EXTRA_ISIZE;
  b.set(i.xattrArea.subarray(0, inodeSize - GOOD_OLD_INODE_SIZE - EXTRA_ISIZE), area);
}

/** A fresh in-memory inode. */
export function newInode(mode: number, t: Time): Inode {
  return {
    mode,
    uid: 0,
    gid: 0,
    size: 0,
    atime: t,
    ctime: t,
    mtime: t,
    crtime: t,
    dtime: 0,
    links: 0,
    blocks: 0,
    flags: 0,
    generation: 0,
    fileAcl: 0,
    extraIsize: EXTRA_ISIZE,
    iblock: new Uint8Array(I_BLOCK_SIZE),
    xattrArea: new Uint8Array(INODE_SIZE - GOOD_OLD_INODE_SIZE - EXTRA_ISIZE),
  };
}
