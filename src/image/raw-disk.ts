// Write a virtual disk (any BlockFile, ideally with known extents) to a raw image file, keeping
// holes as holes: only mapped, non-zero data is written; the file is sized with truncate.
// Not an image puller: the caller composes the device (layer-stack.ts, open-image.ts).

import { type BlockFile, hasExtents } from '../blockfile/blockfile.js';
import { readInto } from '../blockfile/range.js';
import { DadiError } from '../errors.js';
import { outputError, withAtomicOutput } from '../util/atomic-output.js';

export interface ExportStats {
  /** Virtual size of the disk = size of the output file. */
  virtualSize: number;
  /** Bytes read from the device (mapped extents). */
  bytesRead: number;
  /** Bytes actually written (non-zero data). */
  bytesWritten: number;
  /** Extents the device reported. */
  extents: number;
  seconds: number;
}

const CHUNK = 1 << 20;
const IN_FLIGHT = 8;

/**
 * Export `device` to `outPath`, atomically: the file appears complete or not at all, and is never
 * a file the device reads (util/atomic-output.ts knows the open inputs). An aborted `signal` stops
 * the copy and leaves the destination as it was (the daemon's export when its client went away).
 */
export async function exportDisk(
  device: BlockFile,
  outPath: string,
  opts: { signal?: AbortSignal } = {},
): Promise<ExportStats> {
  return withAtomicOutput(outPath, {}, async (out) => {
    const fh = out.handle;
    try {
      await fh.truncate(device.size);
    } catch (e) {
      throw outputError(outPath, e);
    }
    const stats = await copyDisk(
      device,
      async (data, position) => {
        try {
          for (let done = 0; done < data.length; ) {
            done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
          }
        } catch (e) {
          throw outputError(outPath, e);
        }
      },
      opts.signal,
    );
    if (opts.signal?.aborted) throw new DadiError('EIO', `${outPath}: export cancelled; left as it was`);
    return stats;
  });
}

/**
 * What an export writes, to any writer: every mapped, non-zero 4 KiB page run of `device`, at its
 * offset (the fuzzers check these against the layer's index). The writer may keep `data` only
 * until its promise settles.
 */
export async function copyDisk(
  device: BlockFile,
  write: (data: Uint8Array, offset: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<ExportStats> {
  const started = performance.now();
  const stats: ExportStats = { virtualSize: device.size, bytesRead: 0, bytesWritten: 0, extents: 0, seconds: 0 };
  const ranges = hasExtents(device) ? device.extents(0, device.size) : wholeDevice(device.size);
  const pool = new Set<Promise<void>>();
  const buffers: Buffer[] = [];
  const copy = async (offset: number, length: number): Promise<void> => {
    const buf = buffers.pop() ?? Buffer.allocUnsafe(CHUNK);
    try {
      const view = buf.subarray(0, length);
      await readInto(device, view, offset, 'export');
      stats.bytesRead += length;
      // Zero runs stay holes: write only the non-zero 4 KiB pages, grouped.
      for (const [s, e] of nonZeroRuns(view)) {
        await write(view.subarray(s, e), offset + s);
        stats.bytesWritten += e - s;
      }
    } finally {
      buffers.push(buf);
    }
  };
  // The first failing copy stops the export; copies still running finish before the caller
  // cleans up, and no rejection goes unobserved.
  let failed: { error: unknown } | undefined;
  try {
    for await (const ext of ranges) {
      stats.extents++;
      for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
        if (failed || signal?.aborted) break;
        const len = Math.min(CHUNK, ext.offset + ext.length - off);
        const p: Promise<void> = copy(off, len)
          .catch((error) => {
            failed ??= { error };
          })
          .finally(() => pool.delete(p));
        pool.add(p);
        if (pool.size >= IN_FLIGHT) await Promise.race(pool);
      }
      if (failed || signal?.aborted) break;
    }
  } finally {
    await Promise.all(pool);
  }
  if (failed) throw failed.error;
  stats.seconds = (performance.now() - started) / 1000;
  return stats;
}

async function* wholeDevice(size: number): AsyncIterable<{ offset: number; length: number }> {
  yield { offset: 0, length: size };
}

const PAGE = 4096;

/** [start, end) runs of `buf` whose 4 KiB pages are not all zero (the tail page may be shorter). */
export function* nonZeroRuns(buf: Uint8Array): Generator<[number, number]> {
  const words = buf.byteOffset % 4 === 0 ? new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2) : undefined;
  let runStart = -1;
  for (let p = 0; p < buf.length; p += PAGE) {
    const end = Math.min(p + PAGE, buf.length);
    let zero = true;
    if (words && end - p === PAGE) {
      for (let w = p >>> 2, we = end >>> 2; w < we; w++) {
        if (words[w] !== 0) {
          zero = false;
          break;
        }
      }
    } else {
      for (let i = p; i < end; i++) {
        if (buf[i] !== 0) {
          zero = false;
          break;
        }
      }
    }
    if (!zero && runStart < 0) runStart = p;
    if (zero && runStart >= 0) {
      yield [runStart, p];
      runStart = -1;
    }
  }
  if (runStart >= 0) yield [runStart, buf.length];
}
