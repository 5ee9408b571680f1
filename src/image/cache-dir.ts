// Where the host's block cache lives by default. Its own module so that light clients (the CLI
// handing a read to the daemon) can name the directory without loading the cache or registry code.

import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$DADI_CACHE_DIR`, else /var/cache/dadi/blocks as root, else ~/.cache/dadi/blocks. */
export function defaultCacheDir(): string {
  if (process.env.DADI_CACHE_DIR) return process.env.DADI_CACHE_DIR;
  return process.getuid?.() === 0 ? '/var/cache/dadi/blocks' : join(homedir(), '.cache', 'dadi', 'blocks');
}
