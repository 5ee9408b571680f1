// Shared CLI plumbing for commands that reach registries: the common options (--insecure,
// --cache-dir, --no-cache, --platform) and building the client and the host's block cache from them.

import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BlockCache } from '../cache/index.js';
import { type Platform, parsePlatform } from '../oci/index.js';
import { RegistryClient } from '../registry/index.js';
import { parseSize } from '../util/size.js';

export interface RemoteOptions {
  insecure?: boolean | string[];
  cacheDir?: string;
  cache?: boolean;
  cacheSize?: string;
  platform?: string;
}

/** Add the registry/cache options to a command. */
export function withRemoteOptions(cmd: Command): Command {
  return cmd
    .option('--insecure', 'use plain HTTP (or skip TLS verification) for the registry')
    .option('--cache-dir <dir>', 'block cache directory (default: $DADI_CACHE_DIR, /var/cache/dadi/blocks as root)')
    .option('--cache-size <bytes>', 'block cache capacity (default 4G)')
    .option('--no-cache', 'read straight from the registry, without the block cache')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)');
}

export function defaultCacheDir(): string {
  if (process.env.DADI_CACHE_DIR) return process.env.DADI_CACHE_DIR;
  return process.getuid?.() === 0 ? '/var/cache/dadi/blocks' : join(homedir(), '.cache', 'dadi', 'blocks');
}

export interface RemoteContext {
  client: RegistryClient;
  cache?: BlockCache;
  platform?: Platform;
  close(): Promise<void>;
}

export async function openRemoteContext(o: RemoteOptions): Promise<RemoteContext> {
  const platform = o.platform ? parsePlatform(o.platform) : undefined;
  const client = new RegistryClient({ insecure: o.insecure === true ? true : undefined, platform });
  const cache =
    o.cache === false
      ? undefined
      : await BlockCache.open(o.cacheDir ?? defaultCacheDir(), {
          capacity: o.cacheSize ? parseSize(o.cacheSize, '--cache-size') : undefined,
        });
  return {
    client,
    cache,
    platform,
    async close() {
      await cache?.close();
      await client.close();
    },
  };
}
