// Read an image's filesystem without mounting it (`dadi ls|cat|stat`): our own ext4 reader over
// the image's merged stack. What both the standalone CLI and the daemon run (the daemon when it
// owns the block cache), returning plain data; printing is the CLI's.

import { DadiError } from '../errors.js';
import { Ext4 } from '../ext4/index.js';
import { displayName, resolveEscapedPath } from '../ext4/names.js';
import { escapeName } from '../util/quote.js';
import type { FetchStats } from './layer-blob.js';
import { openImage } from './open-image.js';
import type { RemoteContext } from './remote-context.js';

export type BrowseOp = 'ls' | 'stat' | 'cat';

/** One directory entry as `ls` shows it (names and link targets escaped). */
export interface DirRow {
  name: string;
  kind: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  target?: string;
}

/** One inode as `stat` shows it. */
export interface PathInfo {
  path: string;
  ino: number;
  kind: string;
  mode: string;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev?: string;
  target?: string;
  mtime: string;
  ctime: string;
  xattrs: Record<string, string>;
}

export interface BrowseResult {
  /** `ls`: the rows; `stat`: the inode; `cat`: nothing (the bytes went to `write`). */
  value?: DirRow[] | PathInfo;
  fetched: FetchStats;
}

/**
 * Run `op` on `path` of `image`; `cat` hands the file's bytes to `write` in order (the chunk may be
 * reused once its promise settles).
 *
 * @example
 *   const r = await browseImage('reg/app:v1', ctx, 'ls', '/etc', async () => {});
 */
export async function browseImage(
  image: string,
  ctx: RemoteContext,
  op: BrowseOp,
  path: string,
  write: (chunk: Uint8Array) => Promise<void>,
): Promise<BrowseResult> {
  const img = await openImage(image, ctx);
  try {
    const fs = await Ext4.open(img.device);
    const value =
      op === 'ls' ? await listDirectory(fs, image, path) : op === 'stat' ? await statPath(fs, image, path) : undefined;
    if (op === 'cat') await catFile(fs, image, path, write);
    return { value, fetched: img.stats() };
  } finally {
    await img.close();
  }
}

async function listDirectory(fs: Ext4, image: string, path: string): Promise<DirRow[]> {
  const ino = await resolveEscapedPath(fs, path, { follow: true, label: image });
  if ((await fs.stat(ino)).kind !== 'dir') {
    throw new DadiError('EINVAL', `${image}: ${JSON.stringify(path)}: not a directory (dadi stat shows a file)`);
  }
  const rows: DirRow[] = [];
  for (const e of await fs.entries(ino)) {
    const st = await fs.stat(e.ino);
    const target = st.kind === 'symlink' ? escapeName(await fs.readlinkIno(e.ino)) : undefined;
    rows.push({
      name: displayName(e.name),
      kind: st.kind,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      mtime: st.mtime.sec,
      target,
    });
  }
  return rows;
}

async function statPath(fs: Ext4, image: string, path: string): Promise<PathInfo> {
  const ino = await resolveEscapedPath(fs, path, { follow: false, label: image });
  const st = await fs.stat(ino);
  return {
    path,
    ino: st.ino,
    kind: st.kind,
    mode: `0${(st.mode & 0o7777).toString(8)}`,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    nlink: st.nlink,
    rdev: st.kind === 'chr' || st.kind === 'blk' ? `${st.rdev.major}:${st.rdev.minor}` : undefined,
    target: st.kind === 'symlink' ? escapeName(await fs.readlinkIno(ino)) : undefined,
    mtime: `${new Date(st.mtime.sec * 1000).toISOString()} (+${st.mtime.nsec} ns)`,
    ctime: `${new Date(st.ctime.sec * 1000).toISOString()} (+${st.ctime.nsec} ns)`,
    xattrs: Object.fromEntries([...st.xattrs].map(([k, v]) => [k, Buffer.from(v).toString('hex')])),
  };
}

async function catFile(fs: Ext4, image: string, path: string, write: (chunk: Uint8Array) => Promise<void>) {
  const ino = await resolveEscapedPath(fs, path, { follow: true, label: image });
  if ((await fs.stat(ino)).kind !== 'file') {
    throw new DadiError('EINVAL', `${image}: ${JSON.stringify(path)}: not a regular file`);
  }
  for await (const chunk of fs.readFile(ino)) await write(chunk);
}
