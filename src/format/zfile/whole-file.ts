// Whole-file helpers: compress a BlockFile into a ZFile sink, or expand a ZFile into a sink,
// streaming in 1 MiB pieces (what `overlaybd-zfile` and `-x` do). Not for random access.

import type { BlockFile } from '../../blockfile/blockfile.js';
import { readInto } from '../../blockfile/range.js';
import type { Sink } from '../../blockfile/sink.js';
import { ZFileReader } from './reader.js';
import { ZFileWriter, type ZFileWriterOptions, type ZFileWriterStats } from './writer.js';

const PIECE = 1 << 20;

/**
 * Compress all of `src` into `dst` as a ZFile, then end `dst`.
 *
 * @example await compressFile(await LocalFile.open('l1.lsmt'), await FileSink.create('l1.zfile'), { algorithm: 'zstd' });
 */
export async function compressFile(
  src: BlockFile,
  dst: Sink,
  opts: ZFileWriterOptions = {},
): Promise<ZFileWriterStats> {
  const w = new ZFileWriter(dst, opts);
  await copyAll(src, w, 'compress input');
  await w.end();
  return w.stats;
}

/**
 * Write the uncompressed content of the ZFile `src` into `dst`, then end `dst`. Every block's CRC
 * is checked. Returns the uncompressed size. `src` is left open.
 */
export async function decompressFile(src: BlockFile, dst: Sink): Promise<number> {
  const z = await ZFileReader.open(src);
  await copyAll(z, dst, 'decompress');
  await dst.end();
  return z.size;
}

/** Stream all of `src` into `dst` in PIECE-sized reads through one reused buffer. */
async function copyAll(src: BlockFile, dst: Pick<Sink, 'write'>, what: string): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(PIECE, Math.max(1, src.size)));
  for (let p = 0; p < src.size; p += PIECE) {
    const piece = buf.subarray(0, Math.min(PIECE, src.size - p));
    await readInto(src, piece, p, what);
    await dst.write(piece);
  }
}
