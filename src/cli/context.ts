// Shared CLI plumbing for commands that reach registries: the common options (--insecure,
// --cache-dir, --cache-size, --no-cache, --platform) turned into a remote context.

import type { Command } from 'commander';
import { openRemoteContext as open, type RemoteContext } from '../image/remote-context.js';
import { isLayoutSpec } from '../oci/layout.js';
import { parseSize } from '../util/size.js';

export { defaultCacheDir } from '../image/remote-context.js';

export interface RemoteOptions {
  insecure?: boolean;
  cacheDir?: string;
  cache?: boolean;
  cacheSize?: string;
  platform?: string;
}

/** Add the registry/cache options to a command. */
export function withRemoteOptions(cmd: Command): Command {
  return cmd
    .option('--insecure', 'use plain HTTP for the registry')
    .option('--cache-dir <dir>', 'block cache directory (default: $DADI_CACHE_DIR, /var/cache/dadi/blocks as root)')
    .option('--cache-size <bytes>', 'block cache capacity (default 4G)')
    .option('--no-cache', 'read straight from the registry, without the block cache')
    .option('--platform <os/arch>', 'platform to select from a multi-platform image (default: this machine)');
}

/**
 * The registry client and block cache for a command. Given the `image` it reads, an `oci:` layout
 * needs no cache: none is claimed (so a command on a layout never competes with the daemon for it).
 */
export function openRemoteContext(o: RemoteOptions, image?: string): Promise<RemoteContext> {
  return open({
    insecure: o.insecure,
    cacheDir: o.cacheDir,
    cache: image !== undefined && isLayoutSpec(image) ? false : o.cache,
    cacheSize: o.cacheSize ? parseSize(o.cacheSize, '--cache-size') : undefined,
    platform: o.platform,
  });
}
