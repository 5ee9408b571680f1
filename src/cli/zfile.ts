// `dadi zfile …`: compress, decompress and verify ZFile blobs (mirrors overlaybd-zfile).

import type { Command } from 'commander';
import { LocalFile } from '../blockfile/local.js';
import { FileSink } from '../blockfile/sink.js';
import { DadiError } from '../errors.js';
import { detectTar, openTarPayload } from '../format/tar/index.js';
import { compressFile, decompressFile, verifyZFile, type ZFileAlgorithm, ZFileReader } from '../format/zfile/index.js';
import { withLayerOutput } from '../image/layer-output.js';
import { withAtomicOutput } from '../util/atomic-output.js';
import { formatSize } from '../util/size.js';
import { printJson } from './output.js';

export function parseAlgorithm(text: string): ZFileAlgorithm {
  if (text === 'lz4' || text === 'zstd') return text;
  throw new DadiError('EINVAL', `--algorithm: "${text}" is not lz4 or zstd`);
}

export function parseBlockSizeKB(text: string): number {
  const kb = Number(text);
  if (![4, 8, 16, 32, 64].includes(kb)) throw new DadiError('EINVAL', `--bs: "${text}" is not one of 4, 8, 16, 32, 64`);
  return kb * 1024;
}

/** Open a local file, stripping a one-file tar wrapper if present. */
async function openMaybeTar(path: string) {
  const file = await LocalFile.open(path);
  return (await detectTar(file)) ? openTarPayload(file) : file;
}

export function registerZfileCommands(program: Command): void {
  const zfile = program.command('zfile').description('ZFile: seekable block-compressed files');

  zfile
    .command('compress')
    .description('compress SRC into a ZFile (verify on), like overlaybd-zfile')
    .argument('<src>')
    .argument('<dst>')
    .option('--algorithm <algo>', 'lz4 or zstd', 'lz4')
    .option('--bs <KB>', 'block size in KiB: 4, 8, 16, 32, 64', '4')
    .option('-t, --tar', 'wrap the output in the one-file tar')
    .action(async (src: string, dst: string, o) => {
      const algorithm = parseAlgorithm(o.algorithm);
      const blockSize = parseBlockSizeKB(o.bs);
      const input = await LocalFile.open(src);
      try {
        // overlaybd-zfile leaves the header as first written (no overwrite).
        await withLayerOutput(dst, { tar: !!o.tar, inputs: [src] }, (sink) =>
          compressFile(input, sink, { algorithm, blockSize, overwriteHeader: false }),
        );
      } finally {
        await input.close();
      }
    });

  zfile
    .command('decompress')
    .description('decompress a ZFile (tar-wrapped or not) into DST')
    .argument('<src>')
    .argument('<dst>')
    .action(async (src: string, dst: string) => {
      const inner = await openMaybeTar(src);
      try {
        // Check the source before the destination is touched.
        await ZFileReader.open(inner);
        await withAtomicOutput(dst, { inputs: [src] }, (out) => decompressFile(inner, FileSink.into(out)));
      } finally {
        await inner.close();
      }
    });

  zfile
    .command('verify')
    .description(
      'check a whole ZFile: header, trailer, jump table, file size and the CRC of every block (like overlaybd-zfile --verify, stricter)',
    )
    .argument('<src>')
    .option('--json', 'print the result as JSON')
    .action(async (src: string, o: { json?: boolean }) => {
      const inner = await openMaybeTar(src);
      try {
        const r = await verifyZFile(inner);
        if (o.json) return printJson({ file: src, ok: true, blocks: r.blocks, size: r.size });
        console.log(`${src}: ok: ${r.blocks} blocks, ${formatSize(r.size)} uncompressed`);
      } finally {
        await inner.close();
      }
    });
}
