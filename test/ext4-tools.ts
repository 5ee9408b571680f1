// Test helpers around the real e2fsprogs: run `e2fsck -fn` and classify its complaints, dump an
// ext4 image's tree with `debugfs rdump`, and describe a directory tree for equality checks.

import { createHash } from 'node:crypto';
import { lstat, mkdtemp, open, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WritableBlockFile } from '../src/blockfile/blockfile.js';
import { type ApplyOptions, applyLayer } from '../src/ext4/apply.js';
import { Ext4 } from '../src/ext4/index.js';
import { EXT4_INDEX_FL } from '../src/ext4/layout.js';
import { run } from './cli.js';

export interface FsckResult {
  code: number;
  output: string;
  /** Complaints other than the stale summary counters the reference writer is known to leave. */
  unexpected: string[];
  /** All complaints ("... Fix? no" questions). */
  problems: string[];
}

const STALE_COUNTERS = [
  /^Free blocks count wrong/,
  /^Free inodes count wrong/,
  /^Directories count wrong/,
  /^Padding at end of inode bitmap is not set/,
];

export async function e2fsck(image: string): Promise<FsckResult> {
  const r = await run('e2fsck', ['-fn', image]);
  const output = r.stdout + r.stderr;
  const problems: string[] = [];
  const lines = output.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (/Fix\? no|Clear\? no|Ignore\? no|Relocate\? no|Salvage\? no|Abort\? no|Recreate\? no/.test(lines[i]!)) {
      // The question's subject is on this line or the previous non-empty one.
      const subject = lines[i]!.replace(/\s*(Fix|Clear|Ignore|Relocate|Salvage|Abort|Recreate)\? no.*$/, '').trim();
      problems.push(subject || (lines[i - 1] ?? '').trim());
    }
  }
  const unexpected = problems.filter((p) => !STALE_COUNTERS.some((re) => re.test(p)));
  if (r.code >= 8) unexpected.push(`e2fsck exit code ${r.code}`);
  return { code: r.code, output, problems, unexpected };
}

export async function rdump(image: string, dir: string): Promise<void> {
  const r = await run('debugfs', ['-R', `rdump / ${dir}`, image]);
  if (r.code !== 0) throw new Error(`debugfs rdump failed: ${r.stderr}`);
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/** Describe every entry under `root` (relative paths), excluding names in `skip`. */
export async function describeTree(root: string, skip: string[] = ['lost+found']): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (!rel && skip.includes(name)) continue;
      const p = join(root, r);
      const st = await lstat(p);
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', ...base, target: await readlink(p) };
      else if (st.isDirectory()) {
        out[r] = { type: 'dir', ...base };
        await walk(r);
      } else if (st.isFile()) {
        const sha256 = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
        out[r] = { type: 'file', ...base, size: st.size, sha256 };
      } else out[r] = { type: 'other', ...base };
    }
  };
  await walk('');
  return out;
}

/**
 * Full permission bits (incl. setuid/setgid/sticky, which `debugfs rdump` drops) of `paths`
 * (relative to the fs root), read with one `debugfs -f` run.
 */
export async function debugfsModes(image: string, paths: string[]): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(tmpdir(), 'dadi-dbg-'));
  try {
    const cmdFile = join(dir, 'cmds');
    await writeFile(cmdFile, paths.map((p) => `stat "/${p}"\n`).join(''));
    const r = await run('debugfs', ['-f', cmdFile, image]);
    const modes: Record<string, number> = {};
    let current: string | undefined;
    for (const line of (r.stdout + r.stderr).split('\n')) {
      const cmd = /^debugfs: stat "\/(.*)"$/.exec(line);
      if (cmd) current = cmd[1];
      const m = /Mode:\s+([0-7]+)/.exec(line);
      if (m && current !== undefined) {
        modes[current] = Number.parseInt(m[1]!, 8) & 0o7777;
        current = undefined;
      }
    }
    return modes;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Our ext4 reader's view of a tree, in describeTree's shape (full mode bits, symlink owners). */
export async function describeExt4(fs: Ext4): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await fs.readdir(`/${rel}`)).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r === 'lost+found') continue;
      const st = await fs.stat(`/${r}`);
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.kind === 'symlink') out[r] = { type: 'symlink', ...base, target: await fs.readlink(`/${r}`) };
      else if (st.kind === 'dir') {
        out[r] = { type: 'dir', ...base };
        await walk(r);
      } else if (st.kind === 'file') {
        const h = createHash('sha256');
        for await (const c of fs.readFile(`/${r}`)) h.update(c);
        out[r] = { type: 'file', ...base, size: st.size, sha256: h.digest('hex') };
      } else out[r] = { type: 'other', ...base };
    }
  };
  await walk('');
  return out;
}

/** `mkfs.ext4 -d SRC` with the reference's layout (4 KiB blocks, 256-byte inodes, no journal). */
export async function mkfsFromDir(srcDir: string, image: string, size: string): Promise<void> {
  const r = await run('mkfs.ext4', [
    '-q',
    '-F',
    '-b',
    '4096',
    '-I',
    '256',
    '-O',
    '^has_journal',
    '-d',
    srcDir,
    image,
    size,
  ]);
  if (r.code !== 0) throw new Error(`mkfs.ext4 ${image}: ${r.stderr}`);
}

/** Apply layer-tar bytes to the filesystem on `file`, flush it, and return it opened afresh. */
export async function applyTarBytes(file: WritableBlockFile, tar: Uint8Array, opts: ApplyOptions = {}): Promise<Ext4> {
  const fs = await Ext4.open(file);
  await applyLayer(
    fs,
    (async function* () {
      yield tar;
    })(),
    opts,
  );
  await fs.close();
  return Ext4.open(file);
}

/** The logical blocks of inode `ino` that have data (everything else is a hole). */
export async function mappedBlocks(fs: Ext4, ino: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await fs.extents(ino)) for (let k = 0; k < e.len; k++) out.push(e.lblk + k);
  return out;
}

/** Every directory of an image file: path → whether it is indexed (htree) and its raw bytes. */
export async function directoryBytes(image: string): Promise<Map<string, { indexed: boolean; bytes: Buffer }>> {
  const fh = await open(image);
  const size = (await fh.stat()).size;
  const file = {
    name: image,
    size,
    read: async (b: Uint8Array, o: number) => (await fh.read(b, 0, b.length, o)).bytesRead,
    close: async () => {},
  };
  try {
    const fs = await Ext4.open(file);
    const out = new Map<string, { indexed: boolean; bytes: Buffer }>();
    const walk = async (path: string, ino: number): Promise<void> => {
      const inode = await fs.inode(ino);
      const bytes = Buffer.alloc(inode.size);
      await fs.readIno(ino, bytes, 0);
      out.set(path || '/', { indexed: !!(inode.flags & EXT4_INDEX_FL), bytes });
      for (const e of await fs.entries(ino))
        if (e.type === 2) await walk(`${path}/${Buffer.from(e.name, 'latin1').toString()}`, e.ino);
    };
    await walk('', 2);
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * The directories `e2fsck -fyD` (run on a copy) changes: what it would still optimise. Empty
 * when every directory is already as e2fsck lays it out (indexed ones included).
 */
export async function changedByE2fsckD(image: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'dadi-fsckD-'));
  try {
    const copy = join(dir, 'copy.img');
    // Converted disks are 64 GiB sparse files: copy only what they hold.
    const cp = await run('cp', ['--sparse=always', image, copy]);
    if (cp.code !== 0) throw new Error(`cp ${image}: ${cp.stderr}`);
    const r = await run('e2fsck', ['-fyD', copy]);
    if (r.code > 1) throw new Error(`e2fsck -fyD ${image}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    const before = await directoryBytes(image);
    const after = await directoryBytes(copy);
    const paths = new Set([...before.keys(), ...after.keys()]);
    return [...paths].filter((p) => {
      const a = before.get(p);
      const b = after.get(p);
      return !a || !b || a.indexed !== b.indexed || !a.bytes.equals(b.bytes);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
