// `dadi layer …`: create, import, commit, inspect and export LSMT layers (mirrors overlaybd-create,
// overlaybd-commit and the layer-level parts of overlaybd-apply).

import { stat, truncate } from 'node:fs/promises';
import type { Command } from 'commander';
import { checkVirtualSize } from '../format/lsmt/index.js';
import { type ExportResult, exportLayers } from '../image/export-image.js';
import { importRawImage } from '../image/import-raw.js';
import { inspectLayerFile } from '../image/inspect.js';
import { type LayerBlobSource, layerBlobArgument } from '../image/layer-blob.js';
import { withLayerOutput } from '../image/layer-output.js';
import type { RemoteContext } from '../image/remote-context.js';
import { createWritableLayer, openWritableLayer } from '../image/writable.js';
import { assertDistinctFiles, withAtomicFiles } from '../util/atomic-output.js';
import { formatSize, parseSize } from '../util/size.js';
import { daemonForReads, openRemoteContext, type RemoteOptions, withRemoteOptions } from './context.js';
import { printExported } from './image.js';
import { printFields, printJson } from './output.js';
import { parseAlgorithm, parseBlockSizeKB } from './zfile.js';

export function registerLayerCommands(program: Command): void {
  const layer = program.command('layer').description('LSMT layers: create, commit, inspect, export');

  layer
    .command('create')
    .description('create an empty writable (append-only) layer, like overlaybd-create')
    .argument('<data>', 'data file to create')
    .argument('<index>', 'index file to create')
    .requiredOption('--size <bytes>', 'virtual disk size (e.g. 64G)')
    .option('--parent-uuid <uuid>', 'uuid of the layer below')
    .option('--uuid <uuid>', 'uuid of this layer (default: random)')
    .option('--sparse', 'sparse layer: one data file mapped 1:1 (the index file is still created)')
    .option('-f, --force', 'replace existing files')
    .action(async (data: string, index: string, o) => {
      const virtualSize = parseSize(o.size, '--size');
      checkVirtualSize('--size', virtualSize);
      // Neither file appears unless both were written completely.
      await withAtomicFiles([data, index], { replace: !!o.force }, async ([tmpData, tmpIndex]) => {
        const w = await createWritableLayer(
          { data: tmpData!, index: tmpIndex! },
          {
            virtualSize,
            parentUuid: o.parentUuid,
            uuid: o.uuid,
            sparse: !!o.sparse,
          },
        );
        await w.close();
      });
    });

  layer
    .command('import')
    .description('write a raw disk image into a writable layer (non-zero 4 KiB pages only)')
    .argument('<data>')
    .argument('<index>')
    .argument('<image>', 'raw disk image file')
    .action(async (data: string, index: string, image: string) => {
      await assertDistinctFiles([data, index], [image]);
      // The layer is append-only: cutting both files back to their sizes undoes a failed import.
      const before = await Promise.all(
        [data, index].map((p) =>
          stat(p).then(
            (st) => st.size,
            () => undefined,
          ),
        ),
      );
      const w = await openWritableLayer({ data, index });
      try {
        const stats = await importRawImage(image, w);
        await w.close();
        console.error(`imported ${formatSize(stats.bytesWritten)} of ${formatSize(stats.imageSize)} from ${image}`);
      } catch (e) {
        await w.close().catch(() => {});
        for (const [i, p] of [data, index].entries()) if (before[i] !== undefined) await truncate(p, before[i]);
        throw e;
      }
    });

  layer
    .command('commit')
    .description('compact a writable layer into a sealed layer, like overlaybd-commit')
    .argument('<data>')
    .argument('<index>')
    .argument('<out>')
    .option('--uuid <uuid>', 'uuid of the committed layer (default: null uuid)')
    .option('-p, --parent-uuid <uuid>', 'parent uuid (default: from the writable layer)')
    .option('-m, --message <msg>', 'commit message (user tag, ≤ 256 bytes)')
    .option('-z, --compress', 'ZFile-compress the output')
    .option('--algorithm <algo>', 'lz4 or zstd', 'lz4')
    .option('--bs <KB>', 'ZFile block size in KiB: 4, 8, 16, 32, 64', '4')
    .option('-t, --tar', 'wrap the output in the one-file tar')
    .action(async (data: string, index: string, out: string, o) => {
      const zfile = o.compress
        ? { algorithm: parseAlgorithm(o.algorithm), blockSize: parseBlockSizeKB(o.bs) }
        : undefined;
      const w = await openWritableLayer({ data, index }, { readOnly: true });
      try {
        await withLayerOutput(out, { tar: !!o.tar, zfile, inputs: [data, index] }, (sink) =>
          w.commit(sink, { uuid: o.uuid, parentUuid: o.parentUuid, userTag: o.message }),
        );
      } finally {
        await w.close();
      }
    });

  layer
    .command('inspect')
    .description('show wrapping, header, trailer, flags and an index summary of a layer blob')
    .argument('<file>')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o) => {
      const info = await inspectLayerFile(file);
      if (o.json) return printJson(info);
      const rows: Array<[string, unknown]> = [
        ['file', info.file],
        ['size', `${info.fileSize} (${formatSize(info.fileSize)})`],
        ['wrapping', info.wrapping.join(' → ')],
      ];
      for (const [group, fields] of [
        ['tar', info.tar],
        ['zfile', info.zfile],
        ['lsmt', info.lsmt],
      ] as const) {
        for (const [k, v] of Object.entries(fields ?? {}))
          rows.push([`${group}.${k}`, typeof v === 'object' ? JSON.stringify(v) : v]);
      }
      printFields(rows);
    });

  withRemoteOptions(
    layer
      .command('export')
      .description('flatten a stack of layers (bottom first) into a raw disk image; holes stay holes')
      .argument('<out>', 'raw image to write (sparse)')
      .argument('<layers...>', 'layer blobs, bottom layer first: files or host[:port]/repo@sha256:…')
      .option('--stats', 'print bytes and requests fetched from registries')
      .option('--json', 'print statistics as JSON'),
  ).action(async (out: string, layers: string[], o: RemoteOptions & { stats?: boolean; json?: boolean }) => {
    const sources = layers.map(layerBlobArgument);
    const remote = sources.some((s) => s.kind === 'registry');
    const daemon = remote ? await daemonForReads(o, layers) : undefined;
    // The daemon names layers as specs: local paths (made absolute by the client) and blob references.
    const r = daemon
      ? await daemon.exportDisk({
          out,
          layers: sources.map((s, i) =>
            s.kind === 'file' ? { kind: 'file', ref: s.path } : { kind: 'registry', ref: layers[i]! },
          ),
        })
      : await exportHere(out, sources, remote ? await openRemoteContext(o) : undefined);
    if (o.json) printJson({ out, layers, ...r.stats, fetched: r.fetched });
    else printExported(r, '', out, o);
  });
}

async function exportHere(
  out: string,
  sources: LayerBlobSource[],
  ctx: RemoteContext | undefined,
): Promise<ExportResult> {
  try {
    return await exportLayers(sources, ctx, out);
  } finally {
    await ctx?.close();
  }
}
