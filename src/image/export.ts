// Write a virtual disk (any BlockFile, ideally with known extents) to a raw image file, keeping
// holes as holes: only mapped, non-zero data is written; the file is sized with truncate.
// Not an image puller: the caller composes the device (open-layer.ts, open-stack.ts).

import { open } from 'node:fs/promises';
import { type BlockFile, hasExtents } from '../blockfile/blockfile.js';
import { readInto } from '../blockfile/range.js';
import { DadiError } from '../errors.js';

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

/** Export `device` to `outPath` (created or truncated). */
export async function exportDisk(device: BlockFile, outPath: string): Promise<ExportStats> {
  const started = performance.now();
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(outPath, 'w');
  } catch (e) {
    throw new DadiError('EIO', `${outPath}: cannot create: ${(e as Error).message}`, { cause: e });
  }
  const stats: ExportStats = { virtualSize: device.size, bytesRead: 0, bytesWritten: 0, extents: 0, seconds: 0 };
  try {
    await fh.truncate(device.size);
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
          await fh.write(view, s, e - s, offset + s);
          stats.bytesWritten += e - s;
        }
      } finally {
        buffers.push(buf);
      }
    };
    for await (const ext of ranges) {
      stats.extents++;
      for (let off = ext.offset; off < ext.offset + ext.length; off += CHUNK) {
        const len = Math.min(CHUNK, ext.offset + ext.length - off);
        const p = copy(off, len).finally(() => pool.delete(p));
        pool.add(p);
        if (pool.size >= IN_FLIGHT) await Promise.race(pool);
      }
    }
    await Promise.all(pool);
    await fh.datasync();
  } finally {
    await fh.close();
  }
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
