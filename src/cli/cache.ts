// `dadi cache ls|gc|clear`: look after the host's persistent block cache.

import { realpath } from 'node:fs/promises';
import type { Command } from 'commander';
import { DadiError } from '../errors.js';
import { hostCache } from '../image/cache-dir.js';
import { type CacheReport, cacheHeldNote, cacheReport, claimHostCache, openOwnedCache } from '../image/host-cache.js';
import { formatSize, parseSize } from '../util/size.js';
import { printJson } from './output.js';

export function registerCacheCommands(program: Command): void {
  const cache = program.command('cache').description('the persistent block cache of remote blobs');
  const dirOption = [
    '--cache-dir <dir>',
    'cache directory (default: $DADI_CACHE_DIR, cacheConfig.cacheDir of the config file, /var/cache/dadi/blocks as root)',
  ] as const;

  cache
    .command('ls')
    .description('list cached blobs')
    .option(...dirOption)
    .option('--json')
    .action(async (o) => {
      const c = await listCache(o.cacheDir ?? (await hostCache()).dir);
      if (o.json) return printJson({ dir: c.dir, usage: c.usage, capacity: c.capacity, entries: c.blobs });
      for (const e of c.blobs) {
        console.log(
          `${e.key}  ${formatSize(e.cachedBytes).padStart(9)} of ${formatSize(e.size).padStart(9)}  on disk ${formatSize(e.allocatedBytes).padStart(9)}  ${e.lastUse}`,
        );
      }
      console.log(`total ${formatSize(c.usage)} of ${formatSize(c.capacity)} in ${c.dir}`);
    });

  cache
    .command('gc')
    .description('evict least recently used blobs down to a target usage')
    .option(...dirOption)
    .option('--target <bytes>', 'usage to reach (default: the low water mark)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const owned = await openOwnedCache(o.cacheDir ?? (await hostCache()).dir, 'dadi cache');
      const c = owned.cache;
      try {
        const r = await c.gc(o.target ? parseSize(o.target, '--target') : undefined);
        if (o.json) return printJson({ evicted: r.evicted, freedBytes: r.freedBytes, usage: r.usage });
        console.log(
          `evicted ${r.evicted.length} blobs, freed ${formatSize(r.freedBytes)}; usage ${formatSize(r.usage)}`,
        );
      } finally {
        await owned.close();
      }
    });

  cache
    .command('clear')
    .description('drop everything cached')
    .option(...dirOption)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const owned = await openOwnedCache(o.cacheDir ?? (await hostCache()).dir, 'dadi cache');
      const c = owned.cache;
      try {
        const r = await c.clear();
        if (o.json) return printJson({ evicted: r.evicted, freedBytes: r.freedBytes });
        console.log(`cleared ${r.evicted.length} blobs, freed ${formatSize(r.freedBytes)}`);
      } finally {
        await owned.close();
      }
    });
}

/**
 * The cache's blobs: read here when no one owns the directory, else asked of the daemon that owns
 * it (its counts are the exact ones; opening the cache here would make a second writer).
 */
async function listCache(dir: string): Promise<CacheReport> {
  const claim = await claimHostCache(dir, 'dadi cache ls');
  if (!('heldBy' in claim)) {
    try {
      return await cacheReport(await claim.open());
    } finally {
      await claim.close();
    }
  }
  const { DaemonClient } = await import('../runtime/client.js');
  const client = await DaemonClient.connect({ autoStart: false }).catch(() => undefined);
  const report = await client?.cache().catch(() => null);
  if (report && (await sameDir(report.dir, dir))) return report;
  throw new DadiError('EINVAL', `${cacheHeldNote(dir, claim.heldBy)}, which cannot list it: stop it first`);
}

async function sameDir(a: string, b: string): Promise<boolean> {
  const [ra, rb] = await Promise.all([realpath(a).catch(() => a), realpath(b).catch(() => b)]);
  return ra === rb;
}
