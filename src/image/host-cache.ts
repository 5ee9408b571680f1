// The host's block cache as its one owner opens it: the cache directory is claimed first (a
// process lock the kernel releases when its holder exits or is killed, util/process-lock.ts),
// then opened. A process that finds the directory claimed (normally by the daemon) gets no cache
// and reads past it, so two processes never write one cache and its usage count stays exact.
// The one place a BlockCache is constructed.

import { mkdir, realpath } from 'node:fs/promises';
import { BlockCache, type BlockCacheOptions, type CacheEntryInfo, type CacheStats } from '../cache/index.js';
import { DadiError } from '../errors.js';
import { ProcessLock } from '../util/process-lock.js';

/** A claimed cache directory; the cache itself opens on first use (its start-up scan costs). */
export interface CacheClaim {
  readonly dir: string;
  /** Open (once) the cache under this claim. */
  open(): Promise<BlockCache>;
  /** Close the cache if opened, then give the claim up. */
  close(): Promise<void>;
}

/** Who holds a cache directory, as its holder described itself. */
export interface CacheOwner {
  pid?: number;
  role: string;
}

/** Claim `dir` for `role` (`the dadi daemon`, `dadi cat`, …); `heldBy` when another holder has it. */
export async function claimHostCache(
  dir: string,
  role: string,
  opts: BlockCacheOptions = {},
): Promise<CacheClaim | { heldBy: CacheOwner }> {
  let key: string;
  try {
    await mkdir(dir, { recursive: true });
    key = cacheLockKey(await realpath(dir));
  } catch (e) {
    throw new DadiError('EIO', `${dir}: cannot open the block cache: ${(e as Error).message}`, { cause: e });
  }
  const owner: CacheOwner = { pid: process.pid, role };
  const lock = await ProcessLock.tryAcquire(key, JSON.stringify(owner));
  if (!lock) return { heldBy: parseOwner(await ProcessLock.holder(key)) };
  let cache: Promise<BlockCache> | undefined;
  return {
    dir,
    open() {
      cache ??= BlockCache.open(dir, opts);
      return cache;
    },
    async close() {
      try {
        if (cache) await (await cache.catch(() => undefined))?.close();
      } finally {
        await lock.release();
      }
    },
  };
}

/** Claim and open the cache in `dir` for maintenance (`dadi cache …`); refuses while another process owns it. */
export async function openOwnedCache(
  dir: string,
  role: string,
): Promise<{ cache: BlockCache; close(): Promise<void> }> {
  const claim = await claimHostCache(dir, role);
  if ('heldBy' in claim) {
    throw new DadiError('EINVAL', `${cacheHeldNote(dir, claim.heldBy)}: stop it first or name another --cache-dir`);
  }
  try {
    return { cache: await claim.open(), close: () => claim.close() };
  } catch (e) {
    await claim.close();
    throw e;
  }
}

/** A cache's counters and usage with its blobs (least recently used first), as plain data. */
export type CacheReport = CacheStats & { blobs: Array<Omit<CacheEntryInfo, 'lastUse'> & { lastUse: string }> };

/** Report on `cache` after writing what it fetched (`dadi cache ls`, the daemon's `cache` request). */
export async function cacheReport(cache: BlockCache): Promise<CacheReport> {
  await cache.flush();
  const blobs = (await cache.ls()).map((e) => ({ ...e, lastUse: e.lastUse.toISOString() }));
  return { ...cache.stats(), blobs };
}

/** What a reader says when it goes past a cache another process owns. */
export function cacheHeldNote(dir: string, owner: CacheOwner): string {
  return `block cache ${dir} belongs to ${owner.role}${owner.pid ? ` (pid ${owner.pid})` : ''}`;
}

/** The process lock of a cache directory (by its real path: one directory, one lock). */
export function cacheLockKey(realDir: string): string {
  return `cache ${realDir}`;
}

function parseOwner(note: string | undefined): CacheOwner {
  try {
    const o = JSON.parse(note ?? '') as CacheOwner;
    if (typeof o.role === 'string') return { role: o.role, pid: Number.isSafeInteger(o.pid) ? o.pid : undefined };
  } catch {}
  return { role: 'another process' };
}
