// Read files of a mounted image through the kernel, so that its caches (dentries, inodes, the
// files' pages) hold them before a container's start looks for them: a start's reads then need no
// FUSE round trip. For files whose bytes are already in the block cache (the launch files once
// fetched): the reads cost the daemon a decode each, off the start's path, while the runtime
// starts (containerd: `ctr run`'s own start, the Prepare, the user lookup, the shim).
// Paths are resolved inside the mount, never outside it: the image's absolute symlinks (such as
// /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...) point into the image, not the host.
//
// @example
//   const rt = new ReadThrough('/run/dadi/mnt', { maxFileBytes: 8 << 20 });
//   rt.start();              // the filesystem is mounted
//   rt.add('/etc/passwd');
//   await rt.stop();         // before unmounting

import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';

/** Symlinks followed at most while resolving one path (the kernel's own bound). */
const MAX_LINKS = 40;
/** Bytes read per read(2): the kernel's readahead makes its own requests below. */
const CHUNK = 1 << 20;

/**
 * What resolveInside found at a path under the root: a symlink's target, '' for anything else,
 * null for nothing there (or an unreadable link).
 */
export type LinkMemo = Map<string, string | null>;

/**
 * `path` (absolute inside the image) resolved under `root` as if `root` were `/`: each symlink
 * is read and followed inside `root` (`..` stops at it). Undefined when a component is missing
 * or the links go round more than MAX_LINKS times. With `memo`, what each component was is kept
 * and not looked at again (files of one folder are often asked for together: the locale's 12,
 * the libraries; each lstat is a threadpool round trip of the daemon's one thread).
 */
export async function resolveInside(root: string, path: string, memo?: LinkMemo): Promise<string | undefined> {
  const todo = path.split('/');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = join(root, ...done, part);
    let target = memo?.get(here);
    if (target === undefined) {
      const st = await lstat(here).catch(() => undefined);
      target = !st ? null : !st.isSymbolicLink() ? '' : ((await readlink(here).catch(() => undefined)) ?? null);
      memo?.set(here, target);
    }
    if (target === null) return undefined;
    if (target === '') {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) return undefined;
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/'));
  }
  return join(root, ...done);
}

/**
 * Read up to `maxBytes` of the regular file at `path` (inside `root`) and drop the bytes. Returns
 * the bytes read; 0 for anything that is not a regular file (a device, a FIFO: never opened for
 * reading long) or is missing, and for a file `once` (when given) holds already: by the resolved
 * path, or by inode (a hard link). `once` is then told this file's path and inode.
 */
export async function readInside(
  root: string,
  path: string,
  maxBytes: number,
  buf?: Buffer,
  once?: Set<string>,
  memo?: LinkMemo,
): Promise<number> {
  const at = await resolveInside(root, posix.normalize(path), memo);
  if (!at || once?.has(at)) return 0;
  const fh = await open(at, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!fh) return 0;
  try {
    const st = await fh.stat();
    if (!st.isFile()) return 0;
    const ino = `inode ${st.dev}:${st.ino}`;
    if (once?.has(ino)) return 0;
    once?.add(at).add(ino);
    const b = buf ?? Buffer.allocUnsafe(CHUNK);
    // To the size fstat gave: no read(2) more only to see the end.
    const want = Math.min(maxBytes, st.size);
    let total = 0;
    while (total < want) {
      const { bytesRead } = await fh.read(b, 0, Math.min(b.length, want - total), total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  } finally {
    await fh.close();
  }
}

/**
 * Reads through mounts in flight in this process at once, over all of them: each waits in the
 * kernel on a FUSE request that this same process serves, and holds a libuv threadpool thread
 * meanwhile, which the pool's size (the daemon's check: readers per device + a few) does not count.
 */
let inFlight: Promise<unknown> = Promise.resolve();
function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const run = inFlight.then(fn, fn);
  inFlight = run.catch(() => {});
  return run;
}

export interface ReadThroughStats {
  files: number;
  bytes: number;
  failed: number;
  /** The paths read (as asked), in order. */
  paths: string[];
}

/**
 * A queue of files to read through a mount (readInside), one at a time (and one read through any
 * mount of this process at once), from `start()` (the filesystem is mounted) until `stop()` (which
 * waits for the read in progress: the mount must not be busy when it goes). Each file is read once,
 * however many paths name it.
 */
export class ReadThrough {
  readonly stats: ReadThroughStats = { files: 0, bytes: 0, failed: 0, paths: [] };
  private readonly queue: string[] = [];
  private readonly seen = new Set<string>();
  /**
   * The files read, by resolved path and by inode: a file named twice is read once (merged-/usr
   * Debian: /lib/x86_64-linux-gnu/libc.so.6 and /usr/lib/x86_64-linux-gnu/libc.so.6 are one 1.9 MB
   * file, and glibcStartFiles names both).
   */
  private readonly read = new Set<string>();
  /** What resolveInside found at each path it looked at (the mount's files stay put while it reads). */
  private readonly links: LinkMemo = new Map();
  private started = false;
  private stopped = false;
  private running?: Promise<void>;
  private buf?: Buffer;

  constructor(
    private readonly root: string,
    private readonly opts: { maxFileBytes: number; maxFiles?: number },
  ) {}

  /** Queue a path (absolute inside the image). */
  add(path: string): void {
    if (this.stopped || this.seen.has(path) || this.seen.size >= (this.opts.maxFiles ?? 64)) return;
    this.seen.add(path);
    this.queue.push(path);
    this.pump();
  }

  /** The filesystem is mounted at `root`: reads may start. */
  start(): void {
    this.started = true;
    this.pump();
  }

  /** No more reads; resolves once the read in progress is done. */
  async stop(): Promise<ReadThroughStats> {
    this.stopped = true;
    this.queue.length = 0;
    await this.running;
    return this.stats;
  }

  private pump(): void {
    if (this.running || !this.started || this.stopped || this.queue.length === 0) return;
    this.running = (async () => {
      this.buf ??= Buffer.allocUnsafe(CHUNK);
      for (let p = this.queue.shift(); p !== undefined && !this.stopped; p = this.queue.shift()) {
        try {
          const buf = this.buf;
          const n = await oneAtATime(() =>
            readInside(this.root, p, this.opts.maxFileBytes, buf, this.read, this.links),
          );
          if (n > 0) {
            this.stats.files++;
            this.stats.bytes += n;
            this.stats.paths.push(p);
          }
        } catch {
          this.stats.failed++;
        }
      }
    })().finally(() => {
      this.running = undefined;
      this.pump();
    });
  }
}
