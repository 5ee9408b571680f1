// `dadi image export OUT REF`: flatten a whole remote image's disk into a sparse raw image,
// fetching only the blocks that hold data.

import type { Command } from 'commander';
import { openImage } from '../image/open-image.js';
import { exportDisk } from '../image/raw-disk.js';
import { formatSize } from '../util/size.js';
import { openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printJson } from './output.js';

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('whole images: export the virtual disk');
  withRemoteOptions(
    image
      .command('export')
      .description("flatten an image's layers into a raw disk image (sparse)")
      .argument('<out>')
      .argument('<image>', 'host[:port]/repo[:tag|@digest] or oci:DIR[:TAG]')
      .option('--stats', 'print bytes and requests fetched')
      .option('--json', 'print the result as JSON'),
  ).action(async (out: string, ref: string, o: RemoteOptions & { stats?: boolean; json?: boolean }) => {
    const ctx = await openRemoteContext(o, ref);
    try {
      const img = await openImage(ref, ctx);
      try {
        const stats = await exportDisk(img.device, out);
        const fetched = img.stats();
        if (o.json)
          printJson({ out, ref, digest: img.manifestDigest, layers: img.manifest.layers.length, ...stats, fetched });
        else {
          console.error(
            `exported ${formatSize(stats.virtualSize)} disk of ${ref} to ${out}: ${formatSize(stats.bytesWritten)} written in ${stats.seconds.toFixed(2)} s`,
          );
          if (o.stats) printFetchStats(fetched);
        }
      } finally {
        await img.close();
      }
    } finally {
      await ctx.close();
    }
  });
}

export function printFetchStats(f: { requests: number; bytesFetched: number; cacheHitBytes: number }): void {
  console.error(
    `fetched ${formatSize(f.bytesFetched)} (${f.bytesFetched} bytes) in ${f.requests} requests; ${formatSize(f.cacheHitBytes)} from the cache`,
  );
}
