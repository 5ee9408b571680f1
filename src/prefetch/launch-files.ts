// Launch-file prefetch: the files a container's start reads first, fetched into the block cache
// while the device is being mounted, all at once instead of one dependent round trip after another
// as the kernel would (exec of the command, its ELF interpreter, the libraries it needs, then the
// files the runtime reads, such as /etc/passwd). The client names the files (runtime/container.ts:
// the command's candidates on PATH, /etc/passwd, /etc/group); here they are looked up with our own
// ext4 reader over the device, the executable's ELF headers name its interpreter and libraries, and
// each file's extents are fetched undecoded (prefetchRange): the kernel decodes what it reads.
// Not a trace: nothing is recorded; only what the image and the command name is read.

import type { BlockFile } from '../blockfile/blockfile.js';
import { prefetchRange } from '../blockfile/prefetch.js';
import { Ext4, kindOf } from '../ext4/fs.js';
import { type ElfLinks, elfLinks } from './elf-links.js';

/** What a start reads first: plain files, and the command's candidates (the first found is run). */
export interface LaunchFiles {
  files?: string[];
  exec?: string[];
  /**
   * The command's arguments after the program: the python import prefetch reads its `-c` code, and
   * the files that absolute-path arguments name are fetched (argFiles).
   */
  args?: string[];
}

export interface LaunchFilesOptions {
  /** Bytes fetched of one file at most (from its start). */
  maxFileBytes: number;
  /** Bound on the files fetched in all (libraries included). */
  maxFiles?: number;
  /** Fetch a range of the device into the cache (default: prefetchRange on the device). */
  warm?: (offset: number, length: number) => Promise<void>;
  cancelled?: () => boolean;
  /** Told each file's path as asked (or as an ELF header names it) once its bytes are fetched. */
  onFetched?: (path: string) => void;
  /**
   * The ext4 reader of `device` to look the files up with (default: one opened here). A device's
   * launch files are asked for more than once (the snapshotter: its pull's files, then `ctr run`'s
   * command): one reader keeps the group descriptors, inodes and directories decoded the first time
   * (a fresh one decoded the group descriptors and the library folders again: ~10 ms of the
   * daemon's thread per start, profiled).
   */
  fs?: Promise<Ext4>;
}

export interface LaunchFilesStats {
  files: number;
  bytes: number;
}

/** Where a dynamically linked program's libraries are looked for (glibc's defaults, multiarch first). */
export const LIBRARY_DIRS = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
];
/** The ELF headers (and a script's `#!` line) are read from this many first bytes. */
const HEAD_BYTES = 4096;
/** A `#!` interpreter of a script is followed this many times at most. */
const MAX_SCRIPT_DEPTH = 2;
/** Files named by the command's arguments: this many at most, each fetched up to this many bytes. */
const MAX_ARG_FILES = 4;
const ARG_FILE_BYTES = 1 << 20;

/**
 * The files a command's arguments name by absolute path (`cat /etc/os-release`, `python3 /app/main.py`,
 * `sh /entrypoint.sh`): a program reads the files it is handed, right after it starts, each a
 * demand read (a round trip) on the start's path otherwise. Relative paths (the working folder's)
 * and options (`--config=/x`) are left to the program's own reads.
 */
export function argFiles(args: readonly string[] = []): string[] {
  const paths = args.filter((a) => a.startsWith('/') && a.length > 1 && !a.includes('\0'));
  return [...new Set(paths)].slice(0, MAX_ARG_FILES);
}

/**
 * Fetch the launch files of `want` from the ext4 filesystem on `device`. Missing files are skipped;
 * a filesystem that is not ext4 ends the prefetch (the error is the caller's to log).
 */
export async function prefetchLaunchFiles(
  device: BlockFile,
  want: LaunchFiles,
  opts: LaunchFilesOptions,
): Promise<LaunchFilesStats> {
  const fs = await (opts.fs ?? Ext4.open(device));
  const stats: LaunchFilesStats = { files: 0, bytes: 0 };
  const maxFiles = opts.maxFiles ?? 64;
  const seen = new Set<number>();
  const warm = opts.warm ?? ((offset, length) => prefetchRange(device, offset, length));
  const stop = () => opts.cancelled?.() || stats.files >= maxFiles;

  /**
   * Fetch the file at `path` (symlinks followed), up to `maxBytes` of it; its inode, or undefined
   * if absent or not a file.
   */
  const fetchFile = async (path: string, maxBytes = opts.maxFileBytes): Promise<number | undefined> => {
    const ino = await fs.lookup(path, { follow: true }).catch(() => undefined);
    if (ino === undefined || stop()) return undefined;
    const inode = await fs.inode(ino);
    if (kindOf(inode.mode) !== 'file') return undefined;
    if (seen.has(ino)) return ino;
    seen.add(ino);
    stats.files++;
    const blockBytes = 4096;
    const limit = Math.min(inode.size, maxBytes);
    const ranges = (await fs.extents(ino))
      .filter((e) => !e.unwritten && e.lblk * blockBytes < limit)
      .map((e) => ({
        offset: e.pblk * blockBytes,
        length: Math.min(e.len * blockBytes, limit - e.lblk * blockBytes),
      }));
    await Promise.all(
      ranges.map(async (r) => {
        await warm(r.offset, r.length);
        stats.bytes += r.length;
      }),
    );
    opts.onFetched?.(path);
    return ino;
  };

  /** The first 4 KiB of a file (its ELF headers or `#!` line). */
  const head = async (ino: number): Promise<Uint8Array> => {
    const buf = new Uint8Array(HEAD_BYTES);
    const n = await fs.readIno(ino, buf, 0);
    return buf.subarray(0, n);
  };

  /** Fetch a program and what it loads: its interpreter and libraries, or its script interpreter. */
  const fetchProgram = async (path: string, depth = 0): Promise<boolean> => {
    const ino = await fetchFile(path);
    if (ino === undefined) return false;
    const h = await head(ino);
    if (h[0] === 0x23 && h[1] === 0x21 && depth < MAX_SCRIPT_DEPTH) {
      const interp = scriptInterpreter(h);
      if (interp) await fetchProgram(interp, depth + 1);
      return true;
    }
    const links = await elfLinks(h, (offset, length) => readAt(ino, offset, length));
    if (links) await fetchLinked(links);
    return true;
  };

  const readAt = async (ino: number, offset: number, length: number): Promise<Uint8Array> => {
    const buf = new Uint8Array(length);
    const n = await fs.readIno(ino, buf, offset);
    return buf.subarray(0, n);
  };

  /** The interpreter and the needed libraries (one level: a library's own needs are libc's, already here). */
  const fetchLinked = async (links: ElfLinks): Promise<void> => {
    const dirs = links.interpreter ? [dirOf(links.interpreter), ...LIBRARY_DIRS] : LIBRARY_DIRS;
    const jobs: Promise<unknown>[] = [];
    if (links.interpreter) jobs.push(fetchFile(links.interpreter), fetchFile('/etc/ld.so.cache'));
    for (const lib of links.needed) {
      jobs.push(
        (async () => {
          if (lib.includes('/')) return fetchFile(lib);
          for (const d of [...new Set(dirs)]) if ((await fetchFile(`${d}/${lib}`)) !== undefined) return;
        })(),
      );
    }
    await Promise.all(jobs);
  };

  await Promise.all([
    (async () => {
      for (const candidate of want.exec ?? []) if (stop() || (await fetchProgram(candidate))) return;
    })(),
    ...(want.files ?? []).map((f) => fetchFile(f)),
    ...argFiles(want.args).map((f) => fetchFile(f, Math.min(ARG_FILE_BYTES, opts.maxFileBytes))),
  ]);
  return stats;
}

/** The interpreter path of a `#!` line (its first word), if absolute. */
export function scriptInterpreter(head: Uint8Array): string | undefined {
  const nl = head.indexOf(0x0a);
  const line = Buffer.from(head.subarray(2, nl < 0 ? head.length : nl))
    .toString('latin1')
    .trim();
  const interp = line.split(/\s+/)[0];
  return interp?.startsWith('/') ? interp : undefined;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}
