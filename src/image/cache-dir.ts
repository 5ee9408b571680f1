// Where the host's block cache lives by default. Its own module so that light clients (the CLI
// handing a read to the daemon) can name the directory without loading the cache or registry code.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { configFileOf } from '../config/file.js';

/** `$DADI_CACHE_DIR`, else /var/cache/dadi/blocks as root, else ~/.cache/dadi/blocks. */
export function defaultCacheDir(): string {
  if (process.env.DADI_CACHE_DIR) return process.env.DADI_CACHE_DIR;
  return process.getuid?.() === 0 ? '/var/cache/dadi/blocks' : join(homedir(), '.cache', 'dadi', 'blocks');
}

/**
 * The host's block cache as the config file sets it (cacheConfig; `$DADI_CACHE_DIR` still wins), so
 * that clients find the cache the daemon owns; `defaultCacheDir()` and no capacity without a file.
 * The config code loads only when a file is there: commands on a host without one pay nothing.
 */
export async function hostCache(): Promise<{ dir: string; capacity?: number }> {
  if (!existsSync(configFileOf().path)) return { dir: defaultCacheDir() };
  const { config } = await (await import('../config/load.js')).loadConfig();
  return {
    dir: config.cacheConfig.cacheDir ?? defaultCacheDir(),
    capacity: Math.round(config.cacheConfig.cacheSizeGB * 2 ** 30),
  };
}
