// The ext4 filesystem object: open a filesystem on a BlockFile, read it (lookup, readdir, stat,
// file data, symlinks, xattrs) and, on a WritableBlockFile, change it (create, link, unlink, set
// attributes). Metadata is buffered and written at `flush`/`close`; file data goes straight through.

import { type BlockFile, isWritable, type WritableBlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import { Allocator } from './alloc.js';
import { DataWriter } from './data-writer.js';
import { type DirEntry, decodeDirBlock, encodeDirBlocks } from './dirent.js';
import { buildExtentTree, type Extent, hasExtentRoot, pushBlock, readExtentTree, treeBlocksNeeded } from './extent.js';
import { type FileBlocks, FileWriter } from './file-writer.js';
import { type Geometry, groupBlocks } from './geometry.js';
import { canIndex, type DirHashInfo, EXT2_FLAGS_UNSIGNED_HASH, encodeIndexedDir } from './htree.js';
import {
  BLOCK_SIZE,
  DESC_SIZE,
  decodeGroupDesc,
  decodeInode,
  decodeSuperblock,
  direntType,
  EXT4_EXTENTS_FL,
  EXT4_INDEX_FL,
  EXT4_INLINE_DATA_FL,
  EXT4_MAGIC,
  EXTRA_ISIZE,
  encodeGroupDesc,
  encodeInode,
  encodeSuperblock,
  FEATURES,
  GOOD_OLD_INODE_SIZE,
  type GroupDesc,
  INODE_SIZE,
  type Inode,
  newInode,
  ROOT_INO,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SUPERBLOCK_OFFSET,
  type Superblock,
  type Time,
} from './layout.js';
import { MetadataBlockCache } from './metadata-cache.js';
import {
  decodeInodeXattrs,
  decodeXattrBlock,
  encodeInodeXattrs,
  encodeXattrBlock,
  setXattrBlockRefcount,
  type Xattrs,
  xattrBlockRefcount,
} from './xattr.js';

const DIR_NLINK_MAX = 65000;

export type FileKind = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

export interface Stat {
  ino: number;
  kind: FileKind;
  /** Full st_mode (type and permission bits). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  /** Device number of chr/blk inodes. */
  rdev: { major: number; minor: number };
  atime: Time;
  mtime: Time;
  ctime: Time;
  crtime: Time;
  /** Allocated 512-byte sectors. */
  blocks: number;
  xattrs: Xattrs;
}

/** Attributes settable on create or with `setAttrs`. Times default to the fs's default time. */
export interface Attrs {
  /** Permission bits (and setuid/setgid/sticky); the type bits are ignored. */
  mode?: number;
  uid?: number;
  gid?: number;
  atime?: Time;
  mtime?: Time;
  ctime?: Time;
  crtime?: Time;
}

export function kindOf(mode: number): FileKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'chr';
    case S_IFBLK:
      return 'blk';
    case 0o010000:
      return 'fifo';
    default:
      return 'sock';
  }
}

interface DirState {
  entries: Map<string, DirEntry>;
  /** Physical block of each logical block. */
  blocks: number[];
  treeBlocks: number[];
  dirty: boolean;
}

interface InodeState {
  inode: Inode;
  /** Pending xattrs (written at flush); undefined: unchanged. */
  xattrs?: Xattrs;
}

/** Convert a UTF-8 path component to the byte string used internally. */
export function nameKey(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

export interface OpenOptions {
  /** Default timestamp (seconds) for metadata the caller does not time (default 0). */
  time?: number;
}

export class Ext4 {
  readonly name: string;
  readonly writable: boolean;
  readonly sb: Superblock;
  readonly geo: Geometry;
  private readonly cache: MetadataBlockCache;
  private readonly alloc: Allocator;
  private readonly data: DataWriter | null;
  private readonly inodes = new Map<number, InodeState>();
  private readonly dirtyInodes = new Set<number>();
  private readonly dirs = new Map<number, DirState>();
  private readonly extentCache = new Map<number, Extent[]>();
  private readonly defaultTime: Time;

  private constructor(
    private readonly file: BlockFile,
    sb: Superblock,
    groups: GroupDesc[],
    geo: Geometry,
    cache: MetadataBlockCache,
    opts: OpenOptions,
  ) {
    this.name = file.name;
    this.sb = sb;
    this.geo = geo;
    this.cache = cache;
    this.writable = isWritable(file);
    this.alloc = new Allocator(cache, groups, geo, file.name);
    this.data = this.writable ? new DataWriter(file as WritableBlockFile) : null;
    this.defaultTime = { sec: opts.time ?? 0, nsec: 0 };
  }

  /**
   * Open the filesystem on `file` (writable if `file` is a WritableBlockFile).
   * @example const fs = await Ext4.open(layer); await fs.mkdir('/etc'); await fs.close();
   */
  static async open(file: BlockFile, opts: OpenOptions = {}): Promise<Ext4> {
    const raw = new Uint8Array(1024);
    await file.read(raw, SUPERBLOCK_OFFSET);
    const sb = decodeSuperblock(raw);
    if (sb.magic !== EXT4_MAGIC) throw new DadiError('EFORMAT', `${file.name}: no ext4 superblock`);
    if (sb.logBlockSize !== 2) throw new DadiError('EUNSUPPORTED', `${file.name}: block size is not 4 KiB`);
    if (sb.inodeSize !== INODE_SIZE && isWritable(file))
      throw new DadiError('EUNSUPPORTED', `${file.name}: inode size ${sb.inodeSize} (only 256 is writable)`);
    const known = FEATURES.incompat | 0x4; // 0x4: needs_recovery is refused below
    if (sb.featureIncompat & ~known || sb.featureIncompat & 0x4)
      throw new DadiError('EUNSUPPORTED', `${file.name}: ext4 incompat features 0x${sb.featureIncompat.toString(16)}`);
    if (isWritable(file) && sb.featureRoCompat & ~FEATURES.roCompat)
      throw new DadiError(
        'EUNSUPPORTED',
        `${file.name}: cannot write with ro_compat features 0x${sb.featureRoCompat.toString(16)}`,
      );
    if (sb.firstDataBlock !== 0 || sb.blocksPerGroup !== 32768)
      throw new DadiError('EUNSUPPORTED', `${file.name}: unusual group layout`);
    const groupCount = Math.ceil(sb.blocksCount / sb.blocksPerGroup);
    const descSize = sb.featureIncompat & 0x80 ? sb.descSize : 32;
    const gdtBlocks = Math.ceil((groupCount * descSize) / BLOCK_SIZE);
    const geo: Geometry = {
      blocksCount: sb.blocksCount,
      groupCount,
      inodesPerGroup: sb.inodesPerGroup,
      inodeTableBlocks: (sb.inodesPerGroup * sb.inodeSize) / BLOCK_SIZE,
      gdtBlocks,
    };
    const cache = new MetadataBlockCache(file);
    const groups: GroupDesc[] = [];
    for (let i = 0; i < gdtBlocks; i++) {
      const b = await cache.get(1 + i);
      for (let o = 0; o < BLOCK_SIZE && groups.length < groupCount; o += descSize)
        groups.push(decodeGroupDesc(b, o, descSize));
    }
    return new Ext4(file, sb, groups, geo, cache, opts);
  }

  private get wfile(): WritableBlockFile {
    if (!this.writable) throw new DadiError('EINVAL', `${this.name}: filesystem opened read-only`);
    return this.file as WritableBlockFile;
  }

  /** Free blocks and inodes (for capacity checks). */
  get free(): { blocks: number; inodes: number } {
    return { blocks: this.alloc.freeBlocks, inodes: this.alloc.freeInodes };
  }

  // ---------------------------------------------------------------- inodes

  private inodeLocation(ino: number): [blk: number, off: number] {
    if (ino < 1 || ino > this.sb.inodesCount) throw new DadiError('ECORRUPT', `${this.name}: bad inode number ${ino}`);
    const g = Math.floor((ino - 1) / this.geo.inodesPerGroup);
    const idx = (ino - 1) % this.geo.inodesPerGroup;
    const byte = idx * this.sb.inodeSize;
    return [this.alloc.groups[g]!.inodeTable + Math.floor(byte / BLOCK_SIZE), byte % BLOCK_SIZE];
  }

  private async state(ino: number): Promise<InodeState> {
    let s = this.inodes.get(ino);
    if (!s) {
      const [blk, off] = this.inodeLocation(ino);
      const b = await this.cache.get(blk);
      s = { inode: decodeInode(b, off, this.sb.inodeSize) };
      this.inodes.set(ino, s);
    }
    return s;
  }

  /** The decoded inode (live object: callers must not modify it). */
  async inode(ino: number): Promise<Inode> {
    return (await this.state(ino)).inode;
  }

  private touch(ino: number): void {
    this.dirtyInodes.add(ino);
  }

  // ---------------------------------------------------------------- reading

  /** The extents of a regular file, directory or slow symlink. */
  async extents(ino: number): Promise<Extent[]> {
    const cached = this.extentCache.get(ino);
    if (cached) return cached;
    const { extents } = await this.tree(ino);
    this.extentCache.set(ino, extents);
    return extents;
  }

  private async tree(ino: number): Promise<{ extents: Extent[]; treeBlocks: number[] }> {
    const inode = await this.inode(ino);
    if (inode.flags & EXT4_INLINE_DATA_FL)
      throw new DadiError('EUNSUPPORTED', `${this.name}: inode ${ino} has inline data`);
    if (!(inode.flags & EXT4_EXTENTS_FL) || !hasExtentRoot(inode.iblock)) {
      if (inode.iblock.every((x) => x === 0)) return { extents: [], treeBlocks: [] };
      throw new DadiError('EUNSUPPORTED', `${this.name}: inode ${ino} uses block maps, not extents`);
    }
    return readExtentTree(inode.iblock, (b) => this.cache.get(b), `${this.name}: inode ${ino}`);
  }

  private async dir(ino: number): Promise<DirState> {
    let d = this.dirs.get(ino);
    if (d) return d;
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFDIR)
      throw new DadiError('EINVAL', `${this.name}: inode ${ino} is not a directory`);
    const { extents, treeBlocks } = await this.tree(ino);
    const blocks: number[] = [];
    const list: DirEntry[] = [];
    for (const e of extents) {
      if (e.lblk !== blocks.length) throw new DadiError('ECORRUPT', `${this.name}: directory ${ino} has holes`);
      for (let i = 0; i < e.len; i++) {
        blocks.push(e.pblk + i);
        if (!e.unwritten) decodeDirBlock(await this.cache.get(e.pblk + i), `${this.name}: directory ${ino}`, list);
      }
    }
    const entries = new Map<string, DirEntry>();
    for (const e of list) entries.set(e.name, e);
    d = { entries, blocks, treeBlocks, dirty: false };
    this.dirs.set(ino, d);
    return d;
  }

  /** The raw entries of directory `ino`, without "." and ".." (names are latin1 byte strings). */
  async entries(ino: number): Promise<DirEntry[]> {
    const d = await this.dir(ino);
    return [...d.entries.values()].filter((e) => e.name !== '.' && e.name !== '..');
  }

  /** Look up one name (latin1 byte string) in directory `dirIno`. */
  async lookupIn(dirIno: number, name: string): Promise<DirEntry | undefined> {
    return (await this.dir(dirIno)).entries.get(name);
  }

  /**
   * The child directory `name` of directory `dirIno` when both its entry and its inode are loaded
   * already, without a promise (applying a layer looks up every entry's parents: nearly always
   * loaded, and the async path's promises were the main thread's largest allocation). Undefined
   * when not loaded, missing or not a directory: ask lookupIn/inode then.
   */
  loadedSubdir(dirIno: number, name: string): number | undefined {
    const e = this.dirs.get(dirIno)?.entries.get(name);
    if (!e) return undefined;
    const s = this.inodes.get(e.ino);
    return s && (s.inode.mode & S_IFMT) === S_IFDIR ? e.ino : undefined;
  }

  /**
   * Resolve a path (UTF-8, absolute or relative to the root) to an inode number, following
   * symlinks in intermediate components (and the last one with `follow`). Undefined when missing.
   */
  async lookup(path: string, opts: { follow?: boolean } = {}): Promise<number | undefined> {
    return this.resolve(
      path
        .split('/')
        .filter((c) => c && c !== '.')
        .map(nameKey),
      opts.follow ?? false,
    );
  }

  /** Resolve byte-string components from the root; `..` is allowed and stays within the root. */
  async resolve(components: string[], followLast: boolean, depth = 0): Promise<number | undefined> {
    if (depth > 40) throw new DadiError('EINVAL', `${this.name}: too many levels of symbolic links`);
    const stack: number[] = [ROOT_INO];
    for (let i = 0; i < components.length; i++) {
      const c = components[i]!;
      const cur = stack[stack.length - 1]!;
      if (c === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const inode = await this.inode(cur);
      if ((inode.mode & S_IFMT) !== S_IFDIR) return undefined;
      const e = (await this.dir(cur)).entries.get(c);
      if (!e) return undefined;
      const last = i === components.length - 1;
      const child = await this.inode(e.ino);
      if ((child.mode & S_IFMT) === S_IFLNK && (!last || followLast)) {
        const target = Buffer.from(await this.readlinkIno(e.ino)).toString('latin1');
        // A relative target resolves against the symlink's directory: the components before it.
        const prefix = target.startsWith('/') ? [] : components.slice(0, i);
        const rest = [...prefix, ...target.split('/').filter((x) => x && x !== '.'), ...components.slice(i + 1)];
        return this.resolve(rest, followLast, depth + 1);
      }
      stack.push(e.ino);
    }
    return stack[stack.length - 1];
  }

  async stat(pathOrIno: string | number): Promise<Stat> {
    const ino = typeof pathOrIno === 'number' ? pathOrIno : await this.mustLookup(pathOrIno);
    const inode = await this.inode(ino);
    const kind = kindOf(inode.mode);
    return {
      ino,
      kind,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      size: inode.size,
      nlink: inode.links,
      rdev: kind === 'chr' || kind === 'blk' ? decodeRdev(inode.iblock) : { major: 0, minor: 0 },
      atime: inode.atime,
      mtime: inode.mtime,
      ctime: inode.ctime,
      crtime: inode.crtime,
      blocks: inode.blocks,
      xattrs: await this.xattrs(ino),
    };
  }

  private async mustLookup(path: string): Promise<number> {
    const ino = await this.lookup(path);
    if (ino === undefined) throw new DadiError('ENOTFOUND', `${this.name}: ${path}: no such file or directory`);
    return ino;
  }

  /** Directory listing (UTF-8 names, without "." and ".."). */
  async readdir(path: string): Promise<{ name: string; ino: number; kind: FileKind }[]> {
    const ino = await this.lookup(path, { follow: true });
    if (ino === undefined) throw new DadiError('ENOTFOUND', `${this.name}: ${path}: no such directory`);
    if (((await this.inode(ino)).mode & S_IFMT) !== S_IFDIR) {
      throw new DadiError('EINVAL', `${this.name}: ${path}: not a directory`);
    }
    const out = [];
    for (const e of await this.entries(ino)) {
      out.push({
        name: Buffer.from(e.name, 'latin1').toString('utf8'),
        ino: e.ino,
        kind: kindOf((await this.inode(e.ino)).mode),
      });
    }
    return out;
  }

  async xattrs(ino: number): Promise<Xattrs> {
    const s = await this.state(ino);
    if (s.xattrs) return new Map(s.xattrs);
    const out: Xattrs = new Map();
    decodeInodeXattrs(s.inode.xattrArea, `${this.name}: inode ${ino}`, out);
    if (s.inode.fileAcl) decodeXattrBlock(await this.cache.get(s.inode.fileAcl), `${this.name}: inode ${ino}`, out);
    return out;
  }

  async readlinkIno(ino: number): Promise<Uint8Array> {
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFLNK) throw new DadiError('EINVAL', `${this.name}: inode ${ino} is not a symlink`);
    if (!(inode.flags & EXT4_EXTENTS_FL) && inode.size < 60 && !(inode.flags & EXT4_INLINE_DATA_FL))
      return inode.iblock.slice(0, inode.size);
    const buf = new Uint8Array(inode.size);
    await this.readIno(ino, buf, 0);
    return buf;
  }

  async readlink(path: string): Promise<string> {
    return Buffer.from(await this.readlinkIno(await this.mustLookup(path))).toString('utf8');
  }

  /** Read file data at `offset` into `buf`; returns the byte count (short at end of file). */
  async readIno(ino: number, buf: Uint8Array, offset: number): Promise<number> {
    const inode = await this.inode(ino);
    const n = Math.max(0, Math.min(buf.length, inode.size - offset));
    if (n === 0) return 0;
    await this.data?.flush();
    buf.fill(0, 0, n);
    const end = offset + n;
    for (const e of await this.extents(ino)) {
      if (e.unwritten) continue;
      const es = e.lblk * BLOCK_SIZE;
      const ee = es + e.len * BLOCK_SIZE;
      const s = Math.max(es, offset);
      const t = Math.min(ee, end);
      if (s >= t) continue;
      await this.file.read(buf.subarray(s - offset, t - offset), e.pblk * BLOCK_SIZE + (s - es));
    }
    return n;
  }

  /**
   * Stream a file's bytes in [start, end) as chunks of up to `chunkSize`.
   * @example for await (const c of fs.readFile('/etc/hostname')) process.stdout.write(c);
   */
  async *readFile(
    pathOrIno: string | number,
    opts: { start?: number; end?: number; chunkSize?: number } = {},
  ): AsyncGenerator<Uint8Array> {
    const path = typeof pathOrIno === 'number' ? `inode ${pathOrIno}` : pathOrIno;
    const ino = typeof pathOrIno === 'number' ? pathOrIno : await this.lookup(path, { follow: true });
    if (ino === undefined) throw new DadiError('ENOTFOUND', `${this.name}: ${path}: no such file`);
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFREG) throw new DadiError('EINVAL', `${this.name}: ${path}: not a regular file`);
    const end = Math.min(opts.end ?? inode.size, inode.size);
    const chunk = opts.chunkSize ?? 1 << 20;
    for (let p = opts.start ?? 0; p < end; p += chunk) {
      const b = new Uint8Array(Math.min(chunk, end - p));
      await this.readIno(ino, b, p);
      yield b;
    }
  }

  // ---------------------------------------------------------------- writing

  private newState(ino: number, mode: number, attrs: Attrs): InodeState {
    const t = this.defaultTime;
    const inode = newInode(mode, t);
    this.applyAttrs(inode, attrs);
    const s: InodeState = { inode };
    this.inodes.set(ino, s);
    this.extentCache.delete(ino);
    this.touch(ino);
    return s;
  }

  private applyAttrs(inode: Inode, a: Attrs): void {
    if (a.mode !== undefined) inode.mode = (inode.mode & S_IFMT) | (a.mode & 0o7777);
    if (a.uid !== undefined) inode.uid = a.uid >>> 0;
    if (a.gid !== undefined) inode.gid = a.gid >>> 0;
    if (a.atime) inode.atime = a.atime;
    if (a.mtime) inode.mtime = a.mtime;
    if (a.ctime) inode.ctime = a.ctime;
    if (a.crtime) inode.crtime = a.crtime;
  }

  async setAttrs(ino: number, a: Attrs): Promise<void> {
    this.wfile;
    this.applyAttrs((await this.state(ino)).inode, a);
    this.touch(ino);
  }

  /** Replace all xattrs of `ino` (written at flush: in the inode if they fit, else in a block). */
  async setXattrs(ino: number, attrs: Xattrs): Promise<void> {
    this.wfile;
    const s = await this.state(ino);
    s.xattrs = new Map(attrs);
    encodeXattrBlock(attrs, `${this.name}: inode ${ino}`); // fail early when they cannot fit
    this.touch(ino);
  }

  private async addEntry(dirIno: number, name: string, ino: number, mode: number): Promise<void> {
    const d = await this.dir(dirIno);
    if (d.entries.has(name))
      throw new DadiError('EEXIST', `${this.name}: ${printable(name)} exists in directory ${dirIno}`);
    if (Buffer.byteLength(name, 'latin1') > 255 || name.length === 0 || name.includes('/') || name.includes('\0'))
      throw new DadiError('EINVAL', `${this.name}: bad file name ${printable(name)}`);
    d.entries.set(name, { name, ino, type: direntType(mode) });
    d.dirty = true;
  }

  private async checkDir(dirIno: number): Promise<void> {
    this.wfile;
    const inode = await this.inode(dirIno);
    if ((inode.mode & S_IFMT) !== S_IFDIR)
      throw new DadiError('EINVAL', `${this.name}: inode ${dirIno} is not a directory`);
  }

  /** Create directory `name` (latin1 bytes) in `parent`; returns its inode number. */
  async mkdir(parent: number, name: string, attrs: Attrs = {}): Promise<number> {
    await this.checkDir(parent);
    const ino = await this.alloc.allocInode(true);
    const s = this.newState(ino, S_IFDIR | 0o755, attrs);
    s.inode.links = 2;
    s.inode.flags = EXT4_EXTENTS_FL;
    const entries = new Map<string, DirEntry>([
      ['.', { name: '.', ino, type: 2 }],
      ['..', { name: '..', ino: parent, type: 2 }],
    ]);
    this.dirs.set(ino, { entries, blocks: [], treeBlocks: [], dirty: true });
    await this.addEntry(parent, name, ino, S_IFDIR);
    const p = await this.state(parent);
    if (p.inode.links > 1) p.inode.links = p.inode.links + 1 >= DIR_NLINK_MAX ? 1 : p.inode.links + 1;
    this.touch(parent);
    return ino;
  }

  /** Create a device node, fifo or socket (`mode` includes the type bits). */
  async mknod(
    parent: number,
    name: string,
    mode: number,
    attrs: Attrs = {},
    rdev = { major: 0, minor: 0 },
  ): Promise<number> {
    await this.checkDir(parent);
    const type = mode & S_IFMT;
    if (type === S_IFDIR || type === S_IFREG || type === S_IFLNK || type === 0)
      throw new DadiError('EINVAL', `${this.name}: mknod of mode 0${mode.toString(8)}`);
    const ino = await this.alloc.allocInode(false);
    const s = this.newState(ino, type | (mode & 0o7777), attrs);
    s.inode.links = 1;
    if (type === S_IFCHR || type === S_IFBLK) s.inode.iblock = encodeRdev(rdev.major, rdev.minor);
    await this.addEntry(parent, name, ino, type);
    return ino;
  }

  /** Create a symlink to `target` (raw bytes). */
  async symlink(parent: number, name: string, target: Uint8Array, attrs: Attrs = {}): Promise<number> {
    await this.checkDir(parent);
    if (target.length === 0 || target.length >= BLOCK_SIZE)
      throw new DadiError('EINVAL', `${this.name}: symlink target length ${target.length}`);
    const ino = await this.alloc.allocInode(false);
    const s = this.newState(ino, S_IFLNK | 0o777, attrs);
    s.inode.links = 1;
    s.inode.size = target.length;
    if (target.length < 60) {
      s.inode.iblock = new Uint8Array(60);
      s.inode.iblock.set(target);
    } else {
      const [blk] = await this.alloc.allocRun(1);
      await this.data!.put(blk, target);
      this.setExtents(s.inode, [{ lblk: 0, pblk: blk, len: 1 }], []);
      s.inode.flags |= EXT4_EXTENTS_FL;
    }
    await this.addEntry(parent, name, ino, S_IFLNK);
    return ino;
  }

  /** Add a hard link to the non-directory `target` in `parent`. */
  async link(parent: number, name: string, target: number): Promise<void> {
    await this.checkDir(parent);
    const s = await this.state(target);
    if ((s.inode.mode & S_IFMT) === S_IFDIR) throw new DadiError('EINVAL', `${this.name}: hard link to a directory`);
    if (s.inode.links >= 65000) throw new DadiError('ERANGE', `${this.name}: too many links to inode ${target}`);
    await this.addEntry(parent, name, target, s.inode.mode);
    s.inode.links++;
    this.touch(target);
  }

  /**
   * Create a regular file; write its data through the returned writer, then `end()` it.
   * All-zero 4 KiB blocks become holes unless `sparse: false`.
   */
  async createFile(
    parent: number,
    name: string,
    attrs: Attrs = {},
    opts: { sparse?: boolean } = {},
  ): Promise<FileWriter> {
    await this.checkDir(parent);
    const ino = await this.alloc.allocInode(false);
    const s = this.newState(ino, S_IFREG | 0o644, attrs);
    s.inode.links = 1;
    s.inode.flags = EXT4_EXTENTS_FL;
    s.inode.iblock = buildExtentTree([], []).root;
    await this.addEntry(parent, name, ino, S_IFREG);
    return new FileWriter(this.fileBlocks, ino, opts.sparse ?? true);
  }

  /** What a FileWriter may do to this filesystem: no more. */
  private readonly fileBlocks: FileBlocks = {
    allocRun: (max) => this.alloc.allocRun(max),
    putData: (pblk, data) => this.data!.put(pblk, data),
    finish: (ino, extents, size) => this.finishFile(ino, extents, size),
  };

  private async finishFile(ino: number, extents: Extent[], size: number): Promise<void> {
    const s = await this.state(ino);
    const tb = await this.alloc.allocBlocks(treeBlocksNeeded(extents.length));
    this.setExtents(s.inode, extents, tb);
    s.inode.size = size;
    this.extentCache.set(ino, extents);
    this.touch(ino);
  }

  private setExtents(inode: Inode, extents: Extent[], treeBlocks: number[]): void {
    const { root, nodes } = buildExtentTree(extents, treeBlocks);
    for (const n of nodes) this.cache.set(n.pblk, n.data);
    inode.iblock = root;
    const dataBlocks = extents.reduce((a, e) => a + e.len, 0);
    inode.blocks = (dataBlocks + treeBlocks.length + (inode.fileAcl ? 1 : 0)) * 8;
  }

  /** Remove entry `name` from `parent`; a directory is removed with everything below it. */
  async unlink(parent: number, name: string): Promise<void> {
    this.wfile;
    const d = await this.dir(parent);
    const e = d.entries.get(name);
    if (!e || name === '.' || name === '..')
      throw new DadiError('ENOTFOUND', `${this.name}: no ${printable(name)} in directory ${parent}`);
    const child = await this.state(e.ino);
    const isDir = (child.inode.mode & S_IFMT) === S_IFDIR;
    if (isDir) {
      for (const c of await this.entries(e.ino)) await this.unlink(e.ino, c.name);
      const p = await this.state(parent);
      if (p.inode.links > 2) p.inode.links--;
      this.touch(parent);
    }
    d.entries.delete(name);
    d.dirty = true;
    if (isDir || child.inode.links <= 1) await this.freeInode(e.ino, isDir);
    else {
      child.inode.links--;
      this.touch(e.ino);
    }
  }

  private async freeInode(ino: number, isDir: boolean): Promise<void> {
    const s = await this.state(ino);
    const inode = s.inode;
    const hasTree = inode.flags & EXT4_EXTENTS_FL && hasExtentRoot(inode.iblock);
    if (hasTree) {
      let blocks: number[];
      let extents: Extent[];
      if (isDir) {
        const d = await this.dir(ino);
        blocks = d.treeBlocks;
        extents = [];
        for (const b of d.blocks) await this.alloc.freeRun(b, 1);
      } else {
        const t = await this.tree(ino);
        blocks = t.treeBlocks;
        extents = t.extents;
      }
      for (const e of extents) await this.alloc.freeRun(e.pblk, e.len);
      for (const b of blocks) await this.alloc.freeRun(b, 1);
    }
    await this.releaseXattrBlock(inode);
    await this.alloc.freeInode(ino, isDir);
    this.dirs.delete(ino);
    this.extentCache.delete(ino);
    const zero = newInode(0, { sec: 0, nsec: 0 });
    zero.extraIsize = EXTRA_ISIZE;
    this.inodes.set(ino, { inode: zero });
    this.touch(ino);
  }

  private async releaseXattrBlock(inode: Inode): Promise<void> {
    if (!inode.fileAcl) return;
    const blk = inode.fileAcl;
    const b = await this.cache.get(blk);
    const rc = xattrBlockRefcount(b);
    if (rc > 1) setXattrBlockRefcount(await this.cache.modify(blk), rc - 1);
    else await this.alloc.freeRun(blk, 1);
    inode.fileAcl = 0;
    inode.blocks = Math.max(0, inode.blocks - 8);
  }

  /** Write everything buffered: file data, directories, inodes, bitmaps, descriptors, superblock. */
  async flush(): Promise<void> {
    const file = this.wfile;
    await this.data!.flush();
    for (const [ino, d] of this.dirs) if (d.dirty) await this.writeDir(ino, d);
    await this.data!.flush();
    for (const ino of this.dirtyInodes) {
      const s = this.inodes.get(ino)!;
      if (s.xattrs) await this.writeXattrs(ino, s);
    }
    for (const ino of this.dirtyInodes) {
      const s = this.inodes.get(ino)!;
      const [blk, off] = this.inodeLocation(ino);
      const b = await this.cache.modify(blk);
      encodeInode(s.inode, b, off, this.sb.inodeSize);
      // Keep the in-memory copy consistent with what was written (xattr area re-based at 32).
      s.inode.extraIsize = EXTRA_ISIZE;
      s.inode.xattrArea = b.slice(off + GOOD_OLD_INODE_SIZE + EXTRA_ISIZE, off + this.sb.inodeSize);
    }
    this.dirtyInodes.clear();
    const dirtyGroups = this.alloc.takeDirtyGroups();
    const perBlock = BLOCK_SIZE / DESC_SIZE;
    const gdtBlocks = new Set([...dirtyGroups].map((g) => Math.floor(g / perBlock)));
    for (const gb of gdtBlocks) {
      const b = await this.cache.modify(1 + gb);
      for (let g = gb * perBlock; g < Math.min(this.geo.groupCount, (gb + 1) * perBlock); g++)
        encodeGroupDesc(this.alloc.groups[g]!, b, (g - gb * perBlock) * DESC_SIZE);
    }
    this.sb.freeBlocksCount = this.alloc.freeBlocks;
    this.sb.freeInodesCount = this.alloc.freeInodes;
    const b0 = await this.cache.modify(0);
    b0.set(encodeSuperblock(this.sb, 0), SUPERBLOCK_OFFSET);
    await this.cache.flush(file);
    await file.flush();
  }

  /** Bytes of file data written straight through so far, and metadata blocks of the last flush. */
  get written(): { dataBytes: number; metaBlocks: number } {
    return { dataBytes: this.data?.bytesWritten ?? 0, metaBlocks: this.cache.lastFlushBlocks };
  }

  async close(): Promise<void> {
    if (this.writable) await this.flush();
  }

  /**
   * A directory's blocks as e2fsck -D would write them: linear in inode order when they fit in one
   * block, else indexed (htree).
   */
  private encodeDir(ino: number, d: DirState): { blocks: Uint8Array[]; indexed: boolean } {
    const names = [...d.entries.values()].filter((e) => e.name !== '.' && e.name !== '..');
    const dots = [
      d.entries.get('.') ?? { name: '.', ino, type: 2 },
      d.entries.get('..') ?? { name: '..', ino, type: 2 },
    ];
    const byInode = [...names].sort((a, b) => a.ino - b.ino || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const linear = encodeDirBlocks([...dots, ...byInode]);
    const info = this.hashInfo;
    if (linear.length === 1 || !canIndex(info)) return { blocks: linear, indexed: false };
    const parent = dots[1]!.ino;
    const indexed = encodeIndexedDir(names, ino, parent, info);
    return indexed ? { blocks: indexed, indexed: true } : { blocks: linear, indexed: false };
  }

  private get hashInfo(): DirHashInfo {
    return {
      version: this.sb.defHashVersion,
      seed: this.sb.hashSeed,
      signed: !(this.sb.flags & EXT2_FLAGS_UNSIGNED_HASH),
    };
  }

  private async writeDir(ino: number, d: DirState): Promise<void> {
    const s = await this.state(ino);
    const { blocks, indexed } = this.encodeDir(ino, d);
    // Reuse the directory's blocks in order, grow near its last block, free what is left over.
    const phys = d.blocks.slice(0, blocks.length);
    if (phys.length < blocks.length) {
      const last = d.blocks[d.blocks.length - 1];
      if (last !== undefined) this.alloc.setGoal(last + 1);
      phys.push(...(await this.alloc.allocBlocks(blocks.length - phys.length)));
    }
    for (const b of d.blocks.slice(blocks.length)) await this.alloc.freeRun(b, 1);
    for (let i = 0; i < blocks.length; i++) this.cache.set(phys[i]!, blocks[i]!);
    const extents: Extent[] = [];
    for (let i = 0; i < phys.length; i++) pushBlock(extents, i, phys[i]!);
    const need = treeBlocksNeeded(extents.length);
    const tb = d.treeBlocks.slice(0, need);
    if (tb.length < need) tb.push(...(await this.alloc.allocBlocks(need - tb.length)));
    for (const b of d.treeBlocks.slice(need)) await this.alloc.freeRun(b, 1);
    this.setExtents(s.inode, extents, tb);
    s.inode.flags = indexed
      ? s.inode.flags | EXT4_EXTENTS_FL | EXT4_INDEX_FL
      : (s.inode.flags | EXT4_EXTENTS_FL) & ~EXT4_INDEX_FL;
    s.inode.size = blocks.length * BLOCK_SIZE;
    d.blocks = phys;
    d.treeBlocks = tb;
    d.dirty = false;
    this.extentCache.delete(ino);
    this.touch(ino);
  }

  private async writeXattrs(ino: number, s: InodeState): Promise<void> {
    const attrs = s.xattrs!;
    const inode = s.inode;
    const areaSize = this.sb.inodeSize - GOOD_OLD_INODE_SIZE - EXTRA_ISIZE;
    const inIn = encodeInodeXattrs(attrs, areaSize, `${this.name}: inode ${ino}`);
    if (inIn) {
      inode.xattrArea = inIn;
      await this.releaseXattrBlock(inode);
    } else {
      inode.xattrArea = new Uint8Array(areaSize);
      const block = encodeXattrBlock(attrs, `${this.name}: inode ${ino}`);
      let blk = inode.fileAcl;
      if (blk && xattrBlockRefcount(await this.cache.get(blk)) > 1) await this.releaseXattrBlock(inode);
      blk = inode.fileAcl;
      if (!blk) {
        [blk] = await this.alloc.allocRun(1);
        inode.fileAcl = blk;
        inode.blocks += 8;
      }
      this.cache.set(blk, block);
    }
    s.xattrs = undefined;
  }
}

function printable(name: string): string {
  return JSON.stringify(Buffer.from(name, 'latin1').toString('utf8'));
}

/** Linux old/new device number encodings in i_block. */
export function encodeRdev(major: number, minor: number): Uint8Array {
  const b = new Uint8Array(60);
  const dv = new DataView(b.buffer);
  if (major < 256 && minor < 256) dv.setUint32(0, (major << 8) | minor, true);
  else dv.setUint32(4, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, true);
  return b;
}

export function decodeRdev(iblock: Uint8Array): { major: number; minor: number } {
  const dv = new DataView(iblock.buffer, iblock.byteOffset, iblock.byteLength);
  const old = dv.getUint32(0, true);
  if (old) return { major: (old >> 8) & 0xff, minor: old & 0xff };
  const nw = dv.getUint32(4, true);
  return { major: (nw & 0xfff00) >> 8, minor: (nw & 0xff) | ((nw >>> 12) & 0xfff00) };
}

export { groupBlocks };
