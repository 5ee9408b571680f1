// `dadi p2p root`: run the per-datacenter P2P root in the foreground (swarm/root.ts). Thin: flags
// to options (defaults from the config file), a line when it listens, a clean stop on SIGINT/SIGTERM.

import type { Command } from 'commander';
import { DadiError } from '../errors.js';
import { defaultCacheDir } from '../image/cache-dir.js';
import { parseSize } from '../util/size.js';

export function registerP2PCommands(program: Command): void {
  const p2p = program.command('p2p').description('P2P distribution of registry blobs (a root per datacenter)');
  p2p
    .command('root')
    .description('run the P2P root: tracker, access checks, registry fetches with a persistent chunk cache')
    .requiredOption('--listen <host:port>', 'address to serve agents on')
    .option('--cache <dir>', 'chunk cache directory (default: the block cache directory)')
    .option('--cache-size <size>', 'chunk cache capacity (e.g. 20G)')
    .option('--fanout <k>', 'children per host per blob (default: p2pConfig.fanOut of the config file)')
    .option('--root-fanout <k>', 'hosts directly under the root per blob (default: --fanout)')
    .option('--insecure', 'plain HTTP for every registry')
    .option('--config <file>', 'config file (default: $DADI_CONFIG or /etc/dadi/config.yaml)')
    .action(async (o) => {
      // Checked first: an invalid config stops the root before it listens, naming the key.
      const { config } = await (await import('../config/index.js')).loadConfig({ file: o.config });
      const { P2PRoot } = await import('../swarm/root.js');
      const root = await P2PRoot.start({
        listen: o.listen,
        cacheDir: o.cache ?? config.cacheConfig.cacheDir ?? defaultCacheDir(),
        cacheSize: o.cacheSize ? parseSize(o.cacheSize) : undefined,
        chunkSize: config.p2pConfig.chunkSize,
        fanout: o.fanout === undefined ? config.p2pConfig.fanOut : positive(o.fanout, '--fanout'),
        rootFanout: o.rootFanout === undefined ? undefined : positive(o.rootFanout, '--root-fanout'),
        insecure: o.insecure === true,
      });
      process.stderr.write(`dadi p2p root: listening on ${root.url}\n`);
      await new Promise<void>((resolve) => {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve());
      });
      await root.close();
    });
}

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new DadiError('EINVAL', `${flag} must be a positive integer, got ${text}`);
  return n;
}
