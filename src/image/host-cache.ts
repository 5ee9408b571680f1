// The host's block cache as its one owner opens it: the cache directory is claimed first (an
// owner lock, util/owner-lock.ts), then opened. A process that finds the directory claimed by a
// live process (normally the daemon) gets no cache and reads past it, so two processes never
// write one cache and its usage count stays exact. The one place a BlockCache is constructed.

import { mkdir } from 'node:fs/promises';
import { BlockCache, type BlockCacheOptions } from '../cache/index.js';
import { DadiError } from '../errors.js';
import { claimFolder, type FolderLock, type LockOwner } from '../util/owner-lock.js';

/** A claimed cache directory; the cache itself opens on first use (its start-up scan costs). */
export interface CacheClaim {
  readonly dir: string;
  /** Open (once) the cache under this claim. */
  open(): Promise<BlockCache>;
  /** Close the cache if opened, then give the claim up. */
  close(): Promise<void>;
}

/** Claim `dir` for `role` (`daemon`, `dadi cat`, …); `heldBy` when a live process owns it. */
export async function claimHostCache(
  dir: string,
  role: string,
  opts: BlockCacheOptions = {},
): Promise<CacheClaim | { heldBy: LockOwner }> {
  await mkdir(dir, { recursive: true }).catch((e) => {
    throw new DadiError('EIO', `${dir}: cannot create the block cache: ${(e as Error).message}`, { cause: e });
  });
  const r = await claimFolder(dir, 'block cache', role);
  if ('held' in r) return { heldBy: r.held };
  return ownedCache(dir, r.lock, opts);
}

function ownedCache(dir: string, lock: FolderLock, opts: BlockCacheOptions): CacheClaim {
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
    throw new DadiError(
      'EINVAL',
      `block cache ${dir} belongs to ${claim.heldBy.role} (pid ${claim.heldBy.pid}); stop it first or name another --cache-dir`,
    );
  }
  try {
    return { cache: await claim.open(), close: () => claim.close() };
  } catch (e) {
    await claim.close();
    throw e;
  }
}

/** What a reader says when it goes past a cache another process owns. */
export function cacheHeldNote(dir: string, owner: LockOwner): string {
  return `block cache ${dir} belongs to ${owner.role} (pid ${owner.pid}); reading without it`;
}
