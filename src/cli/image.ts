// `dadi image export OUT REF`: flatten a whole remote image's disk into a sparse raw image,
// fetching only the blocks that hold data. When the daemon owns the block cache it writes OUT
// itself (atomically, with the same checks) through that cache; otherwise the export runs here.

import type { Command } from 'commander';
import type { ExportResult } from '../image/export-image.js';
import { formatSize } from '../util/size.js';
import { daemonForReads, openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printFetchStats, printJson } from './output.js';

type ExportOptions = RemoteOptions & { stats?: boolean; json?: boolean };

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
  ).action(async (out: string, ref: string, o: ExportOptions) => {
    const daemon = await daemonForReads(o, [ref]);
    const r = daemon
      ? await daemon.exportDisk({ out, image: ref, platform: o.platform })
      : await exportHere(out, ref, o);
    if (o.json) printJson({ out, ref, digest: r.digest, layers: r.layers, ...r.stats, fetched: r.fetched });
    else printExported(r, `of ${ref} `, out, o);
  });
}

async function exportHere(out: string, ref: string, o: ExportOptions): Promise<ExportResult> {
  const { exportImage } = await import('../image/export-image.js');
  const ctx = await openRemoteContext(o, ref);
  try {
    return await exportImage(ref, ctx, out);
  } finally {
    await ctx.close();
  }
}

/** The human summary of an export (`what`: e.g. "of REF "), with `--stats`. */
export function printExported(r: ExportResult, what: string, out: string, o: { stats?: boolean }): void {
  const s = r.stats;
  console.error(
    `exported ${formatSize(s.virtualSize)} disk ${what}to ${out}: ${formatSize(s.bytesWritten)} written in ${s.seconds.toFixed(2)} s`,
  );
  if (o.stats) printFetchStats(r.fetched);
}
