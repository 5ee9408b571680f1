// Describe a directory tree completely for equality checks between a reference extraction and a
// mounted image: type, full mode, uid, gid, size, sha256, symlink target, mtime (ns), device
// numbers, xattrs (via getfattr) and hard-link groups.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './cli.js';

export interface FullEntry {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  xattrs?: Record<string, string>;
}

export interface FullTree {
  entries: Record<string, FullEntry>;
  /** Sorted groups (≥ 2 paths) of hard-linked regular files, sorted. */
  hardLinks: string[][];
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** All xattrs under `root` as {relative path: {name: hex value}} (one getfattr run). */
async function xattrsUnder(root: string): Promise<Record<string, Record<string, string>>> {
  const r = await run('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]);
  const out: Record<string, Record<string, string>> = {};
  let current: string | undefined;
  for (const line of r.stdout.split('\n')) {
    const file = /^# file: (.*)$/.exec(line);
    if (file) {
      current = file[1]!.slice(root.length).replace(/^\//, '');
      continue;
    }
    const kv = /^([^=]+)=(.*)$/.exec(line);
    if (kv && current !== undefined) (out[current] ??= {})[kv[1]!] = kv[2]!;
  }
  return out;
}

export async function describeFullTree(root: string, skip: string[] = ['lost+found']): Promise<FullTree> {
  const entries: Record<string, FullEntry> = {};
  const inodes = new Map<bigint, string[]>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (!rel && skip.includes(name)) continue;
      const p = join(root, r);
      const st = await lstat(p, { bigint: true });
      const base = {
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.mtimeNs.toString(),
      };
      if (st.isSymbolicLink()) entries[r] = { type: 'symlink', ...base, target: await readlink(p) };
      else if (st.isDirectory()) {
        entries[r] = { type: 'dir', ...base };
        await walk(r);
      } else if (st.isFile()) {
        entries[r] = { type: 'file', ...base, size: Number(st.size), sha256: await sha256File(p) };
        if (st.nlink > 1n) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), r]);
      } else {
        const type = st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'socket';
        const rdev =
          type === 'char' || type === 'block'
            ? `${(st.rdev >> 8n) & 0xfffn}:${(st.rdev & 0xffn) | ((st.rdev >> 12n) & 0xfff00n)}`
            : undefined;
        entries[r] = { type, ...base, ...(rdev ? { rdev } : {}) };
      }
    }
  };
  await walk('');
  for (const [path, attrs] of Object.entries(await xattrsUnder(root))) {
    if (entries[path]) entries[path].xattrs = attrs;
  }
  const hardLinks = [...inodes.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort())
    .sort((a, b) => a[0]!.localeCompare(b[0]!));
  return { entries, hardLinks };
}
