// Apply one OCI layer tar (plain, gzip or zstd; streamed) to an ext4 filesystem: create, replace
// and hard-link entries, set owners, modes, times and xattrs, and honour whiteouts and opaque
// directories exactly as the OCI image spec says. Paths escaping the root are refused.

import { DadiError } from '../errors.js';
import { quoteTarName, readTar, type SparseRegion, type TarEntry } from '../format/tar/index.js';
import { decompress } from './decompress.js';
import type { FileWriter } from './file-writer.js';
import { type Attrs, type Ext4, nameKey } from './fs.js';
import { BLOCK_SIZE, ROOT_INO, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT } from './layout.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

export interface ApplyOptions {
  /** Name for error messages (default: the fs name). */
  name?: string;
  /** Store all-zero 4 KiB blocks of files as holes (default true). */
  sparse?: boolean;
}

export interface ApplyStats {
  entries: number;
  whiteouts: number;
  fileBytes: number;
}

/**
 * Apply a layer stream to `fs` (call `fs.flush()`/`close()` afterwards).
 * @example await applyLayer(fs, createReadStream('layer.tar.gz'));
 */
export async function applyLayer(
  fs: Ext4,
  source: AsyncIterable<Uint8Array>,
  opts: ApplyOptions = {},
): Promise<ApplyStats> {
  const name = opts.name ?? fs.name;
  const stats: ApplyStats = { entries: 0, whiteouts: 0, fileBytes: 0 };
  /** Paths (byte strings joined with "/") created or changed by this layer. */
  const touched = new Set<string>();
  for await (const e of readTar(decompress(source, name), name)) {
    stats.entries++;
    const label = quoteTarName(e.path);
    const comps = splitPath(e.path, name, label);
    if (comps.length === 0) {
      if (e.kind === 'dir') await setMeta(fs, ROOT_INO, e);
      continue;
    }
    const base = comps[comps.length - 1]!;
    const parentComps = comps.slice(0, -1);
    if (base.startsWith(WHITEOUT)) {
      stats.whiteouts++;
      const parent = await fs.resolve(parentComps, true);
      if (parent === undefined || ((await fs.inode(parent)).mode & S_IFMT) !== S_IFDIR) continue;
      if (base === OPAQUE) await opaque(fs, parent, parentComps.join('/'), touched);
      else {
        const target = base.slice(WHITEOUT.length);
        const key = [...parentComps, target].join('/');
        if (target && !touched.has(key) && (await fs.lookupIn(parent, target))) await fs.unlink(parent, target);
      }
      continue;
    }
    const parent = await ensureDir(fs, parentComps, touched, name, label);
    const key = comps.join('/');
    try {
      await applyEntry(fs, e, parent, base, name, label, opts.sparse ?? true);
    } catch (err) {
      if (err instanceof DadiError && !err.message.includes(label))
        throw new DadiError(err.code, `${name}: entry ${label}: ${err.message}`, { cause: err });
      throw err;
    }
    touched.add(key);
    stats.fileBytes += e.size;
  }
  return stats;
}

function splitPath(path: Uint8Array, name: string, label: string): string[] {
  const s = Buffer.from(path).toString('latin1');
  if (s.startsWith('/')) throw new DadiError('EINVAL', `${name}: entry ${label}: absolute path`);
  const comps = s.split('/').filter((c) => c !== '' && c !== '.');
  for (const c of comps) {
    if (c === '..') throw new DadiError('EINVAL', `${name}: entry ${label}: ".." in path`);
    if (c.length > 255) throw new DadiError('EINVAL', `${name}: entry ${label}: name longer than 255 bytes`);
  }
  return comps;
}

/** The directory at `comps`, creating missing ones (0755 root:root); symlinks are followed within the root. */
async function ensureDir(
  fs: Ext4,
  comps: string[],
  touched: Set<string>,
  name: string,
  label: string,
): Promise<number> {
  let cur = ROOT_INO;
  for (let i = 0; i < comps.length; i++) {
    const c = comps[i]!;
    const loaded = fs.loadedSubdir(cur, c);
    if (loaded !== undefined) {
      cur = loaded;
      continue;
    }
    const e = await fs.lookupIn(cur, c);
    if (!e) {
      cur = await fs.mkdir(cur, c, { mode: 0o755 });
      touched.add(comps.slice(0, i + 1).join('/'));
      continue;
    }
    let ino = e.ino;
    if (((await fs.inode(ino)).mode & S_IFMT) === S_IFLNK) {
      const r = await fs.resolve(comps.slice(0, i + 1), true);
      if (r === undefined) throw new DadiError('ENOTFOUND', `${name}: entry ${label}: dangling symlink in its path`);
      ino = r;
    }
    if (((await fs.inode(ino)).mode & S_IFMT) !== S_IFDIR)
      throw new DadiError('EINVAL', `${name}: entry ${label}: a parent is not a directory`);
    cur = ino;
  }
  return cur;
}

/** Remove every child of `dir` not created by this layer; recurse into the kept directories. */
async function opaque(fs: Ext4, dir: number, prefix: string, touched: Set<string>): Promise<void> {
  for (const c of await fs.entries(dir)) {
    const key = prefix ? `${prefix}/${c.name}` : c.name;
    if (!touched.has(key)) await fs.unlink(dir, c.name);
    else if (c.type === 2) await opaque(fs, c.ino, key, touched);
  }
}

function attrsOf(e: TarEntry): Attrs {
  const ctime = e.ctime ?? e.mtime;
  return { mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, atime: e.atime ?? e.mtime, ctime, crtime: ctime };
}

async function setMeta(fs: Ext4, ino: number, e: TarEntry): Promise<void> {
  await fs.setAttrs(ino, attrsOf(e));
  await fs.setXattrs(ino, e.xattrs);
}

async function applyEntry(
  fs: Ext4,
  e: TarEntry,
  parent: number,
  base: string,
  name: string,
  label: string,
  sparse: boolean,
): Promise<void> {
  const existing = await fs.lookupIn(parent, base);
  if (e.kind === 'dir') {
    if (existing && existing.type === 2) {
      await setMeta(fs, existing.ino, e);
      return;
    }
    if (existing) await fs.unlink(parent, base);
    const ino = await fs.mkdir(parent, base, attrsOf(e));
    if (e.xattrs.size) await fs.setXattrs(ino, e.xattrs);
    return;
  }
  if (e.kind === 'hardlink') {
    const target = splitPath(e.linkpath, name, label);
    const ino = await fs.resolve(target, false);
    if (ino === undefined)
      throw new DadiError(
        'ENOTFOUND',
        `${name}: entry ${label}: hard link target ${quoteTarName(e.linkpath)} not found`,
      );
    if (existing?.ino === ino) return;
    if (((await fs.inode(ino)).mode & S_IFMT) === S_IFDIR)
      throw new DadiError('EINVAL', `${name}: entry ${label}: hard link to a directory`);
    if (existing) await fs.unlink(parent, base);
    await fs.link(parent, base, ino);
    return;
  }
  if (existing) await fs.unlink(parent, base);
  const attrs = attrsOf(e);
  let ino: number;
  switch (e.kind) {
    case 'file': {
      const free = fs.free.blocks * BLOCK_SIZE;
      const stored = e.sparse ? e.sparse.reduce((n, r) => n + r.length, 0) : e.size;
      if (stored > free)
        throw new DadiError('ERANGE', `${name}: entry ${label}: size ${stored} exceeds free space ${free}`);
      const w = await fs.createFile(parent, base, attrs, { sparse });
      if (e.sparse) await writeSparse(w, e.data(), e.sparse);
      else for await (const c of e.data()) await w.write(c);
      await w.end(e.size);
      ino = w.ino;
      break;
    }
    case 'symlink':
      ino = await fs.symlink(parent, base, e.linkpath, attrs);
      break;
    case 'chr':
    case 'blk':
      ino = await fs.mknod(parent, base, (e.kind === 'chr' ? S_IFCHR : S_IFBLK) | e.mode, attrs, {
        major: e.devmajor,
        minor: e.devminor,
      });
      break;
    case 'fifo':
      ino = await fs.mknod(parent, base, S_IFIFO | e.mode, attrs);
      break;
  }
  if (e.xattrs.size) await fs.setXattrs(ino, e.xattrs);
}

/** Write a sparse member's stored bytes at its regions' offsets; the gaps become holes. */
async function writeSparse(w: FileWriter, data: AsyncIterable<Uint8Array>, regions: SparseRegion[]): Promise<void> {
  let pos = 0;
  let i = 0;
  for await (let c of data) {
    while (c.length > 0) {
      const r = regions[i]!;
      if (pos < r.offset) await w.skip(r.offset - pos);
      pos = Math.max(pos, r.offset);
      const take = Math.min(c.length, r.offset + r.length - pos);
      await w.write(c.subarray(0, take));
      pos += take;
      c = c.subarray(take);
      if (pos === r.offset + r.length) i++;
    }
  }
}

export { nameKey };
