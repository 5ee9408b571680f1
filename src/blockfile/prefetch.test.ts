// Prefetch through the stages: the fallback reads and drops, a ZFile passes down exactly the stored
// blocks it would read (undecoded), an LSMT stack exactly the file ranges a read of the same range
// reads, a slice its shifted window.

import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyOps, DiskModel, opArb, withTempDir } from '../../test/lsmt-helpers.js';
import { mixedData, zfileBytes } from '../../test/zfile-fuzz.js';
import { LayerStack } from '../format/lsmt/stack.js';
import { WritableLayer } from '../format/lsmt/writable.js';
import { ZFileReader } from '../format/zfile/reader.js';
import type { BlockFile, PrefetchableBlockFile } from './blockfile.js';
import { MemoryFile } from './memory.js';
import { prefetchRange } from './prefetch.js';
import { SliceFile } from './range.js';
import { MemorySink } from './sink.js';

type Range = [offset: number, length: number];

/** Logs reads and prefetches of `inner`; `prefetchable: false` hides prefetch (the fallback path). */
function logged(inner: BlockFile, prefetchable: boolean) {
  const reads: Range[] = [];
  const prefetches: Range[] = [];
  const file: BlockFile & Partial<PrefetchableBlockFile> = {
    name: inner.name,
    size: inner.size,
    read: (buf, offset) => {
      reads.push([offset, buf.length]);
      return inner.read(buf, offset);
    },
    close: () => inner.close(),
  };
  if (prefetchable) {
    file.prefetch = async (offset, length) => {
      prefetches.push([offset, length]);
    };
  }
  return { file, reads, prefetches };
}

/** The bytes `ranges` cover, as sorted disjoint ranges (touching ones merged). */
function union(ranges: Range[]): Range[] {
  const out: Range[] = [];
  for (const [o, l] of [...ranges].filter((r) => r[1] > 0).sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && o <= last[0] + last[1]) last[1] = Math.max(last[1], o + l - last[0]);
    else out.push([o, l]);
  }
  return out;
}

describe('prefetchRange', () => {
  it('reads a file without prefetch in bounded chunks, clipped to its end', async () => {
    const { file, reads } = logged(new MemoryFile(new Uint8Array(3_000_000)), false);
    await prefetchRange(file, 100, 5_000_000);
    expect(reads).toEqual([
      [100, 1 << 20],
      [100 + (1 << 20), 1 << 20],
      [100 + 2 * (1 << 20), 3_000_000 - 100 - 2 * (1 << 20)],
    ]);
    await prefetchRange(file, 3_000_000, 10);
    expect(reads.length).toBe(3);
  });

  it('a slice passes its window down, shifted and clipped', async () => {
    const { file, prefetches } = logged(new MemoryFile(new Uint8Array(10_000)), true);
    const slice = new SliceFile(file, 1000, 5000);
    await prefetchRange(slice, 4000, 9999);
    expect(prefetches).toEqual([[5000, 1000]]);
  });

  it('a ZFile fetches the stored blocks a read would, and decodes nothing', async () => {
    const data = mixedData(200_000, 7);
    const bytes = await zfileBytes(data, { blockSize: 4096 });
    const { file, reads, prefetches } = logged(new MemoryFile(bytes), true);
    const z = await ZFileReader.open(file);
    const opened = reads.length;
    for (const [offset, length] of [
      [0, 1],
      [5000, 10_000],
      [4096, 4096],
      [190_000, 50_000],
    ] as Range[]) {
      prefetches.length = 0;
      await z.prefetch(offset, length);
      const first = Math.floor(offset / 4096);
      const last = Math.floor((Math.min(offset + length, data.length) - 1) / 4096);
      expect(prefetches).toEqual([[z.blockOffset(first), z.blockOffset(last + 1) - z.blockOffset(first)]]);
      // The same blocks are what a read of the range fetches.
      const before = reads.length;
      await z.read(new Uint8Array(Math.min(length, data.length - offset)), offset);
      const fetched = reads.slice(before);
      expect(fetched[0]![0]).toBe(prefetches[0]![0]);
      expect(fetched.reduce((n, r) => n + r[1], 0)).toBe(prefetches[0]![1]);
    }
    expect(reads.length).toBe(opened + 4); // only the checking reads; prefetch read nothing
    await expect(z.prefetch(-1, 1)).rejects.toMatchObject({ code: 'ERANGE' });
  });

  it('an LSMT stack prefetches from each layer exactly the bytes a read of the range reads', async () => {
    const VS = 1 << 20;
    const ops = fc.array(opArb(VS), { minLength: 1, maxLength: 20 });
    const range = fc.tuple(fc.integer({ min: 0, max: VS }), fc.integer({ min: 0, max: VS }));
    await fc.assert(
      fc.asyncProperty(ops, ops, range, async (ops0, ops1, [offset, length]) =>
        withTempDir(async (dir) => {
          const model = new DiskModel(VS);
          const layers = [];
          for (const [i, layerOps] of [ops0, ops1].entries()) {
            const rw = await WritableLayer.create(join(dir, `${i}.data`), join(dir, `${i}.index`), { virtualSize: VS });
            await applyOps(rw, model, layerOps);
            const sink = new MemorySink();
            await rw.commit(sink);
            await rw.close();
            layers.push(logged(new MemoryFile(sink.bytes(), `l${i}`), true));
          }
          const stack = await LayerStack.open(layers.map((l) => l.file));
          for (const l of layers) l.reads.length = 0;
          await stack.prefetch(offset, length);
          await stack.read(new Uint8Array(Math.max(0, Math.min(length, VS - offset))), offset);
          for (const l of layers) expect(union(l.prefetches)).toEqual(union(l.reads));
        }),
      ),
      { numRuns: 30, seed: 11 },
    );
  });
});
