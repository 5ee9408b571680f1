import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryFile } from '../blockfile/memory.js';
import { DadiError } from '../errors.js';
import { BlockCache } from './cache.js';
import { ReadMerger } from './merge.js';
import { CountingSource, FaultySource, patternBytes } from './testing.js';

const KiB = 1024;
const key = `sha256:${'7'.repeat(64)}`;

function merger(maxGap = 0, maxBytes = 1 << 20, merged: Array<[number, number]> = []): ReadMerger {
  return new ReadMerger({ maxGap, maxBytes, key, onMerged: (parts, gap) => merged.push([parts, gap]) });
}

describe('ReadMerger', () => {
  it('reads adjacent ranges asked in one turn with one source read, each getting its bytes', async () => {
    const data = patternBytes(64 * KiB, 3);
    const src = new CountingSource(new MemoryFile(data));
    const merged: Array<[number, number]> = [];
    const m = merger(0, 1 << 20, merged);
    const bufs = [8, 0, 4, 12].map(() => Buffer.alloc(4 * KiB));
    const ns = await Promise.all([8, 0, 4, 12].map((k, i) => m.read(src, bufs[i]!, k * KiB)));
    expect(ns).toEqual([4 * KiB, 4 * KiB, 4 * KiB, 4 * KiB]);
    expect(src.log).toEqual([[0, 16 * KiB]]);
    [8, 0, 4, 12].forEach((k, i) => {
      expect(bufs[i]!.equals(data.subarray(k * KiB, (k + 4) * KiB))).toBe(true);
    });
    expect(merged).toEqual([[4, 0]]);
  });

  it('merges across a gap up to maxGap (counting it) and not beyond, nor past maxBytes', async () => {
    const data = patternBytes(256 * KiB, 5);
    const src = new CountingSource(new MemoryFile(data));
    const merged: Array<[number, number]> = [];
    const m = merger(4 * KiB, 28 * KiB, merged);
    // [0,4) gap 4 [8,12): one; gap 8, then [20,24) [24,48): one of 28 KiB; [48,52) would make it 32.
    const asks: Array<[number, number]> = [
      [0, 4],
      [8, 4],
      [20, 4],
      [24, 24],
      [48, 4],
    ];
    const bufs = asks.map(([, l]) => Buffer.alloc(l * KiB));
    await Promise.all(asks.map(([o], i) => m.read(src, bufs[i]!, o * KiB)));
    for (const [i, [o, l]] of asks.entries()) expect(bufs[i]!.equals(data.subarray(o * KiB, (o + l) * KiB))).toBe(true);
    expect(src.log).toEqual([
      [0, 12 * KiB],
      [20 * KiB, 28 * KiB],
      [48 * KiB, 4 * KiB],
    ]);
    expect(merged).toEqual([
      [2, 4 * KiB],
      [2, 0],
    ]);
  });

  it('does not merge reads of different sources, nor reads asked in different turns', async () => {
    const data = patternBytes(32 * KiB, 9);
    const a = new CountingSource(new MemoryFile(data));
    const b = new CountingSource(new MemoryFile(data));
    const m = merger();
    await Promise.all([m.read(a, Buffer.alloc(4 * KiB), 0), m.read(b, Buffer.alloc(4 * KiB), 4 * KiB)]);
    expect([a.requests, b.requests]).toEqual([1, 1]);
    await m.read(a, Buffer.alloc(4 * KiB), 4 * KiB);
    await new Promise((r) => setImmediate(r));
    await m.read(a, Buffer.alloc(4 * KiB), 8 * KiB);
    expect(a.log).toEqual([
      [0, 4 * KiB],
      [4 * KiB, 4 * KiB],
      [8 * KiB, 4 * KiB],
    ]);
  });

  it('fails every part of a failed merged read with its error, and gives short parts at the end', async () => {
    const data = patternBytes(10 * KiB, 2);
    const failing = new FaultySource(new MemoryFile(data), { fail: 1, random: () => 0 });
    const m = merger();
    const r = await Promise.allSettled([0, 4].map((k) => m.read(failing, Buffer.alloc(4 * KiB), k * KiB)));
    expect(failing.requests).toBe(1);
    for (const x of r) {
      expect(x.status).toBe('rejected');
      expect((x as PromiseRejectedResult).reason).toBeInstanceOf(DadiError);
    }
    const src = new CountingSource(new MemoryFile(data));
    const bufs = [Buffer.alloc(4 * KiB), Buffer.alloc(4 * KiB)];
    const ns = await Promise.all([m.read(src, bufs[0]!, 4 * KiB), m.read(src, bufs[1]!, 8 * KiB)]);
    expect(src.requests).toBe(1);
    expect(ns).toEqual([4 * KiB, 2 * KiB]);
    expect(bufs[1]!.subarray(0, 2 * KiB).equals(data.subarray(8 * KiB))).toBe(true);
  });

  it('gives every read its exact bytes for random ranges (seeded), in at most as many source reads', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: 120 }), fc.integer({ min: 1, max: 12 })), { minLength: 1, maxLength: 16 }),
        fc.constantFrom(0, 2 * KiB, 8 * KiB),
        async (asks, gap) => {
          const data = patternBytes(128 * KiB, asks.length);
          const src = new CountingSource(new MemoryFile(data));
          const m = merger(gap, 16 * KiB);
          const bufs = asks.map(([, l]) => Buffer.alloc(l * KiB));
          const ns = await Promise.all(asks.map(([o], i) => m.read(src, bufs[i]!, o * KiB)));
          asks.forEach(([o, l], i) => {
            const want = data.subarray(o * KiB, Math.min(data.length, (o + l) * KiB));
            expect(ns[i]).toBe(want.length);
            expect(bufs[i]!.subarray(0, want.length).equals(want)).toBe(true);
          });
          expect(src.requests).toBeLessThanOrEqual(asks.length);
          for (const [, len] of src.log) expect(len).toBeLessThanOrEqual(Math.max(16 * KiB, 12 * KiB));
        },
      ),
      { seed: 1101, numRuns: 60 },
    );
  });
});

describe('the block cache merging fetches', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-merge-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fetches concurrent reads of neighbouring units with one source read, verified and cached each', async () => {
    const data = patternBytes(256 * KiB, 11);
    const src = new CountingSource(new MemoryFile(data));
    const verified: number[] = [];
    const cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 4 * KiB, demandGrain: 4 * KiB, readahead: 0 });
    try {
      const blob = cache.open(key, src, {
        verify: (off) => {
          verified.push(off);
          return true;
        },
      });
      const offs = [40, 44, 48, 52, 60].map((k) => k * KiB);
      const bufs = offs.map(() => Buffer.alloc(4 * KiB));
      await Promise.all(offs.map((o, i) => blob.read(bufs[i]!, o)));
      offs.forEach((o, i) => {
        expect(bufs[i]!.equals(data.subarray(o, o + 4 * KiB))).toBe(true);
      });
      // 40-56 adjacent: one read; 60 alone (a 4 KiB gap, default merge gap 0).
      expect(src.log).toEqual([
        [40 * KiB, 16 * KiB],
        [60 * KiB, 4 * KiB],
      ]);
      expect(verified.sort((a, b) => a - b)).toEqual(offs);
      const s = blob.stats();
      expect([s.fetches, s.mergedFetches, s.mergeGapBytes, s.fetchBytes]).toEqual([5, 3, 0, 20 * KiB]);
      // Each fetch was recorded: read again from the cache, with no source read.
      await cache.flush();
      for (const [i, o] of offs.entries()) {
        const b = Buffer.alloc(4 * KiB);
        await blob.read(b, o);
        expect(b.equals(bufs[i]!)).toBe(true);
      }
      expect(src.requests).toBe(2);
      await blob.close();
    } finally {
      await cache.close();
    }
  });

  it('refetches alone the part of a merged read its verifier rejects, never serving wrong bytes', async () => {
    const data = patternBytes(64 * KiB, 13);
    const src = new CountingSource(new MemoryFile(data));
    let rejections = 1;
    const cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 4 * KiB, demandGrain: 4 * KiB, readahead: 0 });
    try {
      const blob = cache.open(key, src, {
        verify: (off) => !(off === 8 * KiB && rejections-- > 0),
      });
      const bufs = [0, 4, 8, 12].map(() => Buffer.alloc(4 * KiB));
      await Promise.all([0, 4, 8, 12].map((k, i) => blob.read(bufs[i]!, k * KiB)));
      [0, 4, 8, 12].forEach((k, i) => {
        expect(bufs[i]!.equals(data.subarray(k * KiB, (k + 4) * KiB))).toBe(true);
      });
      expect(src.log).toEqual([
        [0, 16 * KiB],
        [8 * KiB, 4 * KiB],
      ]);
      expect(blob.stats().verifyFailures).toBe(1);
      await blob.close();
    } finally {
      await cache.close();
    }
  });
});
