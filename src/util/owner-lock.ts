// An exclusive claim on a folder that survives crashes: a lock file holding the owner's PID and
// process start time, created atomically (link of a complete temp file, so nobody ever reads a
// half-written claim). A claim whose owner is gone (killed, crashed) is stale and is taken over;
// a PID reused by another process is told apart by its start time. Node has no flock(2), and an
// O_EXCL file needs exactly this staleness check to not stay locked forever.
//
// @example
//   const r = await claimFolder('/var/cache/dadi/blocks', 'block cache', 'daemon');
//   if ('held' in r) console.error(`owned by pid ${r.held.pid}`); else await r.lock.release();

import { randomBytes } from 'node:crypto';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DadiError } from '../errors.js';

export const LOCK_FILE = 'owner.lock';

/** Who holds a claim. */
export interface LockOwner {
  pid: number;
  /** Process start time (clock ticks since boot, /proc/PID/stat field 22) when it could be read. */
  start?: string;
  /** What the owner is, for messages: `daemon`, `dadi cat`, … */
  role: string;
}

export interface FolderLock {
  readonly path: string;
  readonly owner: LockOwner;
  /** Give the claim up (only if it is still ours). */
  release(): Promise<void>;
}

/** Locks this process holds, by lock path: a second claim from the same process is refused too. */
const heldHere = new Set<string>();

/**
 * Claim `dir` for this process. Returns the lock, or who holds it when a live process does.
 * `what` names the folder in errors (e.g. `block cache`).
 */
export async function claimFolder(
  dir: string,
  what: string,
  role: string,
): Promise<{ lock: FolderLock } | { held: LockOwner }> {
  const path = join(dir, LOCK_FILE);
  const owner: LockOwner = { pid: process.pid, start: await processStart(process.pid), role };
  const text = `${JSON.stringify(owner)}\n`;
  // Each pass either takes the lock, finds a live owner, or removes one stale claim: bounded.
  for (let attempt = 0; attempt < 4; attempt++) {
    if (heldHere.has(path)) return { held: owner };
    if (await linkNew(path, text, what)) {
      heldHere.add(path);
      return { lock: ownLock(path, owner, text) };
    }
    const seen = await readFile(path, 'utf8').catch(() => undefined);
    if (seen === undefined) continue; // released meanwhile: try again
    const holder = parseOwner(seen);
    if (holder && (await isAlive(holder))) return { held: holder };
    await removeStale(path, seen);
  }
  throw new DadiError('EIO', `${path}: cannot claim the ${what} (its lock file keeps changing)`);
}

function ownLock(path: string, owner: LockOwner, text: string): FolderLock {
  return {
    path,
    owner,
    async release() {
      if (!heldHere.delete(path)) return;
      const now = await readFile(path, 'utf8').catch(() => undefined);
      if (now === text) await unlink(path).catch(() => {});
    },
  };
}

/** Create `path` holding `text` unless it exists; false when it does. */
async function linkNew(path: string, text: string, what: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new DadiError('EIO', `${path}: cannot claim the ${what}: ${(e as Error).message}`, { cause: e });
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/**
 * Move the stale claim `seen` out of the way. rename is atomic, so of several processes finding the
 * same stale claim one moves it; one that moved a fresh claim instead (made in between) puts it back.
 */
async function removeStale(path: string, seen: string): Promise<void> {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return; // gone already
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== seen) await link(aside, path).catch(() => {});
  await unlink(aside).catch(() => {});
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as LockOwner;
    return Number.isSafeInteger(o.pid) && o.pid > 0 ? o : undefined;
  } catch {
    return undefined;
  }
}

async function isAlive(o: LockOwner): Promise<boolean> {
  if (o.pid === process.pid) return o.start === undefined || o.start === (await processStart(o.pid));
  try {
    process.kill(o.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (o.start === undefined) return true;
  const now = await processStart(o.pid);
  return now === undefined || now === o.start;
}

/** Start time of `pid` from /proc, or undefined where there is no /proc. */
async function processStart(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // Field 2 (comm) may hold spaces and parentheses: count fields after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}
