// The Linux FUSE kernel ABI (include/uapi/linux/fuse.h) that a one-file filesystem needs: opcodes,
// INIT flags, and encode/decode of the structs we read and write. Little-endian, as the host.
// Not a general FUSE library: no inode table, no notifications, no splice.

export const FUSE_KERNEL_VERSION = 7;
/** The minor version we answer with; struct sizes below are those of 7.31+. */
export const FUSE_KERNEL_MINOR = 31;

export const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  LSEEK: 46,
  SYNCFS: 50,
  STATX: 52,
} as const;

/** fuse_init_in/out flags (bits of `flags`). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  ASYNC_DIO: 1 << 15,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  NO_OPENDIR_SUPPORT: 1 << 24,
} as const;

/** fuse_open_out.open_flags */
export const FOPEN_KEEP_CACHE = 1 << 1;

/** Linux errno values we reply with (negated in fuse_out_header.error). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  ENODATA: 61,
  EOPNOTSUPP: 95,
} as const;

export const ROOT_ID = 1;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const DT_DIR = 4;
export const DT_REG = 8;

/*
 * fuse_in_header (40): 0 u32 len | 4 u32 opcode | 8 u64 unique | 16 u64 nodeid | 24 u32 uid | 28 u32 gid
 *                      | 32 u32 pid | 36 u16 total_extlen | 38 u16 padding
 * fuse_out_header (16): 0 u32 len | 4 i32 error | 8 u64 unique
 */
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
}

export function decodeInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: b.readBigUInt64LE(8),
    nodeid: b.readBigUInt64LE(16),
  };
}

export function encodeOutHeader(b: Buffer, len: number, error: number, unique: bigint): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
}

/*
 * fuse_init_in (body): 0 u32 major | 4 u32 minor | 8 u32 max_readahead | 12 u32 flags | 16 u32 flags2 ...
 * fuse_init_out (64): 0 u32 major | 4 u32 minor | 8 u32 max_readahead | 12 u32 flags | 16 u16 max_background
 *   | 18 u16 congestion_threshold | 20 u32 max_write | 24 u32 time_gran | 28 u16 max_pages
 *   | 30 u16 map_alignment | 32 u32 flags2 | 36 u32 max_stack_depth | 40 u32 unused[6]
 */
export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export function decodeInitIn(body: Buffer): InitIn {
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadahead: body.readUInt32LE(8),
    flags: body.readUInt32LE(12),
  };
}

export const INIT_OUT_SIZE = 64;
export function encodeInitOut(
  b: Buffer,
  o: { minor: number; maxReadahead: number; flags: number; maxBackground: number; maxWrite: number; maxPages: number },
): void {
  b.fill(0, 0, INIT_OUT_SIZE);
  b.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(o.flags >>> 0, 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(Math.floor((o.maxBackground * 3) / 4), 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(1, 24); // time_gran: 1 ns
  b.writeUInt16LE(o.maxPages, 28);
}

/*
 * fuse_attr (88): 0 u64 ino | 8 u64 size | 16 u64 blocks | 24 u64 atime | 32 u64 mtime | 40 u64 ctime
 *   | 48 u32 atimensec | 52 u32 mtimensec | 56 u32 ctimensec | 60 u32 mode | 64 u32 nlink | 68 u32 uid
 *   | 72 u32 gid | 76 u32 rdev | 80 u32 blksize | 84 u32 flags
 * fuse_entry_out (128): 0 u64 nodeid | 8 u64 generation | 16 u64 entry_valid | 24 u64 attr_valid
 *   | 32 u32 entry_valid_nsec | 36 u32 attr_valid_nsec | 40 fuse_attr
 * fuse_attr_out (104): 0 u64 attr_valid | 8 u32 attr_valid_nsec | 12 u32 dummy | 16 fuse_attr
 */
export interface Attr {
  ino: number;
  size: number;
  mode: number;
  nlink: number;
  /** Seconds since the epoch, for atime/mtime/ctime. */
  time: number;
}

export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;

export function encodeAttr(b: Buffer, at: number, a: Attr): void {
  b.fill(0, at, at + ATTR_SIZE);
  b.writeBigUInt64LE(BigInt(a.ino), at);
  b.writeBigUInt64LE(BigInt(a.size), at + 8);
  b.writeBigUInt64LE(BigInt(Math.ceil(a.size / 512)), at + 16);
  const t = BigInt(Math.floor(a.time));
  b.writeBigUInt64LE(t, at + 24);
  b.writeBigUInt64LE(t, at + 32);
  b.writeBigUInt64LE(t, at + 40);
  b.writeUInt32LE(a.mode, at + 60);
  b.writeUInt32LE(a.nlink, at + 64);
  b.writeUInt32LE(4096, at + 80);
}

export function encodeEntryOut(b: Buffer, at: number, a: Attr, validSeconds: number): void {
  b.fill(0, at, at + 40);
  b.writeBigUInt64LE(BigInt(a.ino), at);
  b.writeBigUInt64LE(BigInt(validSeconds), at + 16);
  b.writeBigUInt64LE(BigInt(validSeconds), at + 24);
  encodeAttr(b, at + 40, a);
}

export function encodeAttrOut(b: Buffer, at: number, a: Attr, validSeconds: number): void {
  b.fill(0, at, at + 16);
  b.writeBigUInt64LE(BigInt(validSeconds), at);
  encodeAttr(b, at + 16, a);
}

/* fuse_open_out (16): 0 u64 fh | 8 u32 open_flags | 12 i32 backing_id */
export const OPEN_OUT_SIZE = 16;
export function encodeOpenOut(b: Buffer, at: number, fh: number, openFlags: number): void {
  b.fill(0, at, at + OPEN_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(fh), at);
  b.writeUInt32LE(openFlags, at + 8);
}

/* fuse_open_in: 0 u32 flags | 4 u32 open_flags */
export function decodeOpenIn(body: Buffer): { flags: number } {
  return { flags: body.readUInt32LE(0) };
}

/* fuse_read_in (40): 0 u64 fh | 8 u64 offset | 16 u32 size | 20 u32 read_flags | 24 u64 lock_owner | 32 u32 flags */
/* fuse_write_in (40): 0 u64 fh | 8 u64 offset | 16 u32 size | 20 u32 write_flags | 24 u64 lock_owner | 32 u32 flags; data at 40 */
export const WRITE_IN_SIZE = 40;
export function decodeReadIn(body: Buffer): { offset: number; size: number } {
  return { offset: Number(body.readBigUInt64LE(8)), size: body.readUInt32LE(16) };
}
export const decodeWriteIn = decodeReadIn;

/* fuse_write_out (8): 0 u32 size | 4 u32 padding */
export const WRITE_OUT_SIZE = 8;

/*
 * fuse_setattr_in (88): 0 u32 valid | 4 u32 padding | 8 u64 fh | 16 u64 size | ... | 68 u32 mode ...
 * FATTR_SIZE = 1 << 3.
 */
export const FATTR_SIZE = 1 << 3;
export function decodeSetattrIn(body: Buffer): { valid: number; size: number } {
  return { valid: body.readUInt32LE(0), size: Number(body.readBigUInt64LE(16)) };
}

/*
 * fuse_kstatfs (80): 0 u64 blocks | 8 u64 bfree | 16 u64 bavail | 24 u64 files | 32 u64 ffree
 *   | 40 u32 bsize | 44 u32 namelen | 48 u32 frsize | 52 u32 padding | 56 u32 spare[6]
 */
export const STATFS_OUT_SIZE = 80;
export function encodeStatfsOut(b: Buffer, at: number, totalBytes: number): void {
  b.fill(0, at, at + STATFS_OUT_SIZE);
  b.writeBigUInt64LE(BigInt(Math.ceil(totalBytes / 4096)), at);
  b.writeBigUInt64LE(2n, at + 24);
  b.writeUInt32LE(4096, at + 40);
  b.writeUInt32LE(255, at + 44);
  b.writeUInt32LE(4096, at + 48);
}

/* fuse_dirent: 0 u64 ino | 8 u64 off | 16 u32 namelen | 20 u32 type | 24 name, padded to 8 bytes */
export function direntSize(name: string): number {
  return (24 + Buffer.byteLength(name) + 7) & ~7;
}
export function encodeDirent(b: Buffer, at: number, ino: number, off: number, type: number, name: string): number {
  const size = direntSize(name);
  b.fill(0, at, at + size);
  b.writeBigUInt64LE(BigInt(ino), at);
  b.writeBigUInt64LE(BigInt(off), at + 8);
  b.writeUInt32LE(Buffer.byteLength(name), at + 16);
  b.writeUInt32LE(type, at + 20);
  b.write(name, at + 24);
  return size;
}
