// The pieces every remote read needs on a host: a registry client and the shared block cache,
// built from a few options. Used by the CLI and by the daemon's registry layer source.

import { homedir } from 'node:os';
import { join } from 'node:path';
import { BlockCache } from '../cache/index.js';
import { type Platform, parsePlatform } from '../oci/index.js';
import { RegistryClient } from '../registry/index.js';

export interface RemoteContextOptions {
  /** Plain HTTP for every registry (loopback registries always use HTTP). */
  insecure?: boolean;
  /** Block cache folder (default `defaultCacheDir()`). */
  cacheDir?: string;
  /** false: no cache, every read goes to the registry. */
  cache?: boolean;
  /** Cache capacity in bytes. */
  cacheSize?: number;
  /** `os/arch[/variant]` to pick from multi-platform images. */
  platform?: string;
}

export interface RemoteContext {
  client: RegistryClient;
  cache?: BlockCache;
  platform?: Platform;
  close(): Promise<void>;
}

/** `$DADI_CACHE_DIR`, else /var/cache/dadi/blocks as root, else ~/.cache/dadi/blocks. */
export function defaultCacheDir(): string {
  if (process.env.DADI_CACHE_DIR) return process.env.DADI_CACHE_DIR;
  return process.getuid?.() === 0 ? '/var/cache/dadi/blocks' : join(homedir(), '.cache', 'dadi', 'blocks');
}

export async function openRemoteContext(o: RemoteContextOptions = {}): Promise<RemoteContext> {
  const platform = o.platform ? parsePlatform(o.platform) : undefined;
  const client = new RegistryClient({ insecure: o.insecure ? true : undefined, platform });
  const cache =
    o.cache === false ? undefined : await BlockCache.open(o.cacheDir ?? defaultCacheDir(), { capacity: o.cacheSize });
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
