// Atomic outputs: every command that writes a file writes it here. The bytes go into a temporary
// file beside the destination, which replaces the destination (fsync, rename, fsync of the folder)
// only once everything succeeded; on failure the temporary file is removed and the destination is
// left exactly as it was. An output that is the same file as one of the command's inputs (same
// device and inode, also through symlinks and hard links) is refused before anything is written.
// Not a sink: blockfile/sink.ts streams into the handle this module owns.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DadiError } from '../errors.js';
import { quote } from './quote.js';

/** Temporary files and folders of this process not yet published or removed (removed on SIGINT/SIGTERM too). */
const pending = new Set<string>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const p of pending) rmSync(p, { recursive: true, force: true });
      // Die of the signal as we would have without this handler, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/**
 * Have a temporary file or folder removed if the process is interrupted before `release()` (call it
 * once the path is published or removed). For staging areas built by path, like a new OCI layout.
 */
export function removeIfInterrupted(path: string): () => void {
  hookSignals();
  pending.add(path);
  return () => {
    pending.delete(path);
  };
}

/**
 * Files this process has open for reading (LocalFile registers them), by `dev:ino`: an output is
 * checked against these too, so a command cannot overwrite what it reads even when its caller
 * forgot to list an input (the blobs of an OCI layout behind `image export`, say).
 */
const openInputs = new Map<string, { path: string; count: number }>();

/** Record that `path` (device `dev`, inode `ino`) is open for reading; returns the release. */
export function registerOpenInput(path: string, dev: number, ino: number): () => void {
  const key = `${dev}:${ino}`;
  const e = openInputs.get(key);
  if (e) e.count++;
  else openInputs.set(key, { path, count: 1 });
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const cur = openInputs.get(key);
    if (cur && --cur.count === 0) openInputs.delete(key);
  };
}

/** The temporary name used beside `dest` (hidden, recognisable, unique). */
export function tempNameFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.dadi-tmp-${randomBytes(6).toString('hex')}`);
}

/** True for names `tempNameFor` produces (tests look for leftovers with it). */
export function isTempName(name: string): boolean {
  return /\.dadi-tmp-[0-9a-f]{12}$/.test(name);
}

/**
 * Refuse when any of `outputs` already exists as the same file as one of `inputs` (compared by
 * device and inode after following symlinks, so hard links and symlinks are caught), or when two
 * outputs are the same file or path.
 */
export async function assertDistinctFiles(outputs: string[], inputs: string[]): Promise<void> {
  const id = async (p: string) => {
    const st = await stat(p).catch(() => undefined);
    return st ? `${st.dev}:${st.ino}` : undefined;
  };
  const inputIds = new Map<string, string>([...openInputs].map(([k, v]) => [k, v.path]));
  for (const p of inputs) {
    const i = await id(p);
    if (i) inputIds.set(i, p);
  }
  const seen = new Map<string, string>();
  for (const out of outputs) {
    const i = await id(out);
    if (!i) {
      const other = seen.get(`path:${out}`);
      if (other) throw new DadiError('EINVAL', `${quote(out)}: given twice as an output`);
      seen.set(`path:${out}`, out);
      continue;
    }
    const input = inputIds.get(i);
    if (input !== undefined) {
      const why = input === out ? 'it is also an input' : `it is the same file as the input ${quote(input)}`;
      throw new DadiError('EINVAL', `${quote(out)}: refusing to write the output onto an input: ${why}`);
    }
    const twin = seen.get(i);
    if (twin !== undefined) throw new DadiError('EINVAL', `${quote(out)}: the same file as the output ${quote(twin)}`);
    seen.set(i, out);
  }
}

/** Wrap a write-side failure so that it names the destination (ENOSPC, EFBIG, EDQUOT…). */
export function outputError(dest: string, e: unknown): DadiError {
  if (e instanceof DadiError) return e;
  const err = e as NodeJS.ErrnoException;
  const why =
    err?.code === 'ENOSPC'
      ? 'no space left on the device'
      : err?.code === 'EFBIG'
        ? 'file too large for this filesystem'
        : (err?.message ?? String(e));
  return new DadiError('EIO', `${quote(dest)}: cannot write: ${why}`, { cause: e });
}

export interface AtomicOutputOptions {
  /** Files the command reads: the output must not be any of them. */
  inputs?: string[];
  /** Refuse when the destination exists (default: replace it). */
  noClobber?: boolean;
  /** Permission bits of the new file (default: the replaced file's, else 0666 less the umask). */
  mode?: number;
}

/** One output file in the making. Call `commit()` once it is complete, `abort()` otherwise. */
export class AtomicOutput {
  private done = false;
  private constructor(
    /** The destination as given (for messages). */
    readonly dest: string,
    /** Where the rename goes (the symlink's target when `dest` is a symlink). */
    private readonly target: string,
    readonly tempPath: string,
    readonly handle: FileHandle,
  ) {}

  /**
   * Check the destination against the inputs and open a temporary file beside it.
   * @example const out = await AtomicOutput.create('disk.img', { inputs: ['l1.lsmt'] });
   */
  static async create(dest: string, opts: AtomicOutputOptions = {}): Promise<AtomicOutput> {
    await assertDistinctFiles([dest], opts.inputs ?? []);
    const existing = await stat(dest).catch(() => undefined);
    let target = dest;
    if (existing) {
      if (opts.noClobber) throw new DadiError('EEXIST', `${quote(dest)}: already exists`);
      if (!existing.isFile()) throw new DadiError('EINVAL', `${quote(dest)}: exists and is not a regular file`);
      // Replace what a symlink points at, not the symlink itself, as writing through it would.
      target = await realpath(dest);
    }
    const tempPath = tempNameFor(target);
    hookSignals();
    let handle: FileHandle;
    try {
      handle = await open(tempPath, 'wx', opts.mode ?? (existing ? existing.mode & 0o7777 : 0o666));
      // The umask must not widen or narrow an explicit mode (credentials files want exactly 0600).
      if (opts.mode !== undefined) await handle.chmod(opts.mode);
    } catch (e) {
      throw new DadiError('EIO', `${quote(dest)}: cannot create: ${(e as Error).message}`, { cause: e });
    }
    pending.add(tempPath);
    return new AtomicOutput(dest, target, tempPath, handle);
  }

  /** Make the output durable and visible under its name. */
  async commit(): Promise<void> {
    if (this.done) throw new DadiError('EINVAL', `${quote(this.dest)}: output already finished`);
    try {
      await this.handle.sync();
      await this.handle.close();
      this.done = true;
      await publish(this.tempPath, this.target);
    } catch (e) {
      await this.abort();
      throw outputError(this.dest, e);
    }
  }

  /** Drop the temporary file; the destination stays as it was. Safe to call more than once. */
  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.handle.close().catch(() => {});
    }
    if (pending.delete(this.tempPath)) await unlink(this.tempPath).catch(() => {});
  }
}

/**
 * Run `fn` on an atomic output: committed when `fn` resolves, aborted when it throws (write errors
 * are rethrown naming the destination).
 */
export async function withAtomicOutput<T>(
  dest: string,
  opts: AtomicOutputOptions,
  fn: (out: AtomicOutput) => Promise<T>,
): Promise<T> {
  const out = await AtomicOutput.create(dest, opts);
  let result: T;
  try {
    result = await fn(out);
  } catch (e) {
    await out.abort();
    throw e;
  }
  await out.commit();
  return result;
}

/** Write a small file (a JSON document, say) atomically. */
export function writeFileAtomic(
  dest: string,
  data: string | Uint8Array,
  opts: AtomicOutputOptions = {},
): Promise<void> {
  return withAtomicOutput(dest, opts, (out) => out.handle.writeFile(data));
}

/**
 * writeFileAtomic in one synchronous step, for a process's own small state file on a latency
 * path: the asynchronous version makes nine thread-pool round trips (stat, realpath, open, write,
 * fsync, close, rename, the folder's open and fsync), each waiting behind the process's other work
 * (2-26 ms in all in a busy snapshotter, measured), where the calls themselves take well under a
 * millisecond. No check against inputs: for the caller's own file, not a command's output.
 */
export function writeFileAtomicSync(dest: string, data: string | Uint8Array): void {
  const existing = statSync(dest, { throwIfNoEntry: false });
  if (existing && !existing.isFile()) throw new DadiError('EINVAL', `${quote(dest)}: exists and is not a regular file`);
  const target = existing ? realpathSync(dest) : dest;
  const temp = tempNameFor(target);
  try {
    const fd = openSync(temp, 'wx', existing ? existing.mode & 0o7777 : 0o666);
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
    const dir = openSync(dirname(target), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch (e) {
    rmSync(temp, { force: true });
    throw outputError(dest, e);
  }
}

/**
 * Files written by path (writers that create their own files, like a writable layer's data and
 * index): `fn` creates them at the temporary paths it is given; once it resolves they are synced
 * and renamed onto `dests` one after the other; if it throws they are removed. Existing
 * destinations are refused unless `replace`.
 */
export async function withAtomicFiles<T>(
  dests: string[],
  opts: { inputs?: string[]; replace?: boolean },
  fn: (temps: string[]) => Promise<T>,
): Promise<T> {
  await assertDistinctFiles(dests, opts.inputs ?? []);
  const targets: string[] = [];
  for (const dest of dests) {
    const existing = await stat(dest).catch(() => undefined);
    if (existing && !opts.replace)
      throw new DadiError('EEXIST', `${quote(dest)}: already exists (--force replaces it)`);
    if (existing && !existing.isFile())
      throw new DadiError('EINVAL', `${quote(dest)}: exists and is not a regular file`);
    targets.push(existing ? await realpath(dest) : dest);
  }
  hookSignals();
  const temps = targets.map(tempNameFor);
  for (const t of temps) pending.add(t);
  try {
    const result = await fn(temps);
    for (const t of temps) await syncPath(t);
    for (const [i, t] of temps.entries()) await publish(t, targets[i]!);
    return result;
  } catch (e) {
    throw e instanceof DadiError ? e : outputError(dests.join(', '), e);
  } finally {
    for (const t of temps) if (pending.delete(t)) await unlink(t).catch(() => {});
  }
}

async function publish(temp: string, target: string): Promise<void> {
  await rename(temp, target);
  pending.delete(temp);
  await syncPath(dirname(target));
}

/** fsync a file or a folder (a folder's entry for a renamed file is durable only after this). */
export async function syncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
