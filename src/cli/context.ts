// Shared CLI plumbing for commands that reach registries: the common options (--insecure,
// --cache-dir, --cache-size, --no-cache, --platform, --p2p-proxy) turned into a remote context, or, when the
// daemon owns the block cache, into the daemon client that performs the read instead. Light on
// purpose: the registry and cache code load only when this process reads by itself.

import { realpath } from 'node:fs/promises';
import type { Command } from 'commander';
import { hostCache } from '../image/cache-dir.js';
import type { RemoteContext } from '../image/remote-context.js';
import { isLayoutSpec } from '../oci/layout.js';
import type { DaemonClient } from '../runtime/client.js';

export interface RemoteOptions {
  insecure?: boolean;
  cacheDir?: string;
  cache?: boolean;
  cacheSize?: string;
  platform?: string;
  p2pProxy?: string;
}

/** Add the registry/cache options to a command. */
export function withRemoteOptions(cmd: Command): Command {
  return cmd
    .option('--insecure', 'use plain HTTP for the registry')
    .option(
      '--cache-dir <dir>',
      'block cache directory (default: $DADI_CACHE_DIR, cacheConfig.cacheDir of the config file, /var/cache/dadi/blocks as root)',
    )
    .option('--cache-size <bytes>', 'block cache capacity (default 4G)')
    .option('--no-cache', 'read straight from the registry, without the block cache')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)')
    .option('--p2p-proxy <url>', 'read blobs through this overlaybd-style P2P proxy (default: $DADI_P2P_PROXY)');
}

/**
 * The registry client and block cache for a command. Given the `image` it reads, an `oci:` layout
 * needs no cache: none is claimed (so a command on a layout never competes with the daemon for it).
 */
export async function openRemoteContext(o: RemoteOptions, image?: string): Promise<RemoteContext> {
  const [{ openRemoteContext: open }, { parseSize }] = await Promise.all([
    import('../image/remote-context.js'),
    import('../util/size.js'),
  ]);
  return open({
    insecure: o.insecure,
    cacheDir: o.cacheDir,
    cache: image !== undefined && isLayoutSpec(image) ? false : o.cache,
    cacheSize: o.cacheSize ? parseSize(o.cacheSize, '--cache-size') : undefined,
    platform: o.platform,
    p2pProxy: o.p2pProxy,
  });
}

/**
 * The daemon to hand a registry read to: one answers on this host's state folder and owns the
 * cache directory this command would use, so reading here would go past that cache. Undefined
 * (read standalone, claiming the cache if free) for `oci:` layouts, `--no-cache`, `--insecure`
 * or `--p2p-proxy` (the daemon's registry client has its own transport settings), or when no such
 * daemon runs.
 */
export async function daemonForReads(o: RemoteOptions, images: string[]): Promise<DaemonClient | undefined> {
  if (o.cache === false || o.insecure || o.p2pProxy || images.every(isLayoutSpec)) return undefined;
  const { DaemonClient } = await import('../runtime/client.js');
  const client = await DaemonClient.connect({ autoStart: false }).catch(() => undefined);
  const owned = client && (await client.ping().catch(() => undefined))?.cacheDir;
  if (!owned) return undefined;
  const real = (p: string) => realpath(p).catch(() => p);
  const [mine, its] = await Promise.all([real(o.cacheDir ?? (await hostCache()).dir), real(owned)]);
  return mine === its ? client : undefined;
}
