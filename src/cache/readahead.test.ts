import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rng } from '../../test/mutate.js';
import type { BlockFile } from '../blockfile/blockfile.js';
import { MemoryFile } from '../blockfile/memory.js';
import { DadiError } from '../errors.js';
import { BlockCache, type BlockCacheOptions, DEFAULT_DEMAND_GRAIN, DEFAULT_REFILL_SIZE } from './cache.js';
import { CountingSource, FaultySource, patternBytes, sleep } from './testing.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const R = 256 * KiB;
const key = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
// The unit the expectations below are written in (not the default).
const noFloor: BlockCacheOptions = { diskFloor: 0, refillSize: R };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-ra-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A source whose reads at offsets in `held` wait until released; logs every request. */
class HoldSource implements BlockFile {
  readonly name = 'hold';
  readonly log: Array<[number, number]> = [];
  readonly held = new Set<number>();
  /** Requests at these offsets fail (once each). */
  readonly failAt = new Set<number>();
  private waiting: Array<{ offset: number; go: () => void }> = [];
  constructor(readonly data: Uint8Array) {}
  get size(): number {
    return this.data.length;
  }
  async read(buf: Uint8Array, offset: number): Promise<number> {
    this.log.push([offset, buf.length]);
    if (this.held.has(offset)) await new Promise<void>((go) => this.waiting.push({ offset, go }));
    if (this.failAt.delete(offset)) throw new DadiError('EIO', `hold: injected failure at ${offset}`);
    const n = Math.min(buf.length, this.size - offset);
    buf.set(this.data.subarray(offset, offset + n));
    return n;
  }
  release(offset: number): void {
    this.held.delete(offset);
    const keep: typeof this.waiting = [];
    for (const w of this.waiting) w.offset === offset ? w.go() : keep.push(w);
    this.waiting = keep;
  }
  async close(): Promise<void> {}
}

/** A large blob of zeros (random reads rarely come near each other). */
function zeros(size: number): BlockFile {
  return {
    name: 'zeros',
    size,
    async read(buf, offset) {
      const n = Math.max(0, Math.min(buf.length, size - offset));
      buf.fill(0, 0, n);
      return n;
    },
    async close() {},
  };
}

async function readSeq(blob: BlockFile, data: Uint8Array, from: number, to: number, chunk: number): Promise<void> {
  for (let o = from; o < to; o += chunk) {
    const buf = Buffer.alloc(Math.min(chunk, to - o));
    const n = await blob.read(buf, o);
    expect(n).toBe(buf.length);
    expect(buf.equals(data.subarray(o, o + n))).toBe(true);
  }
}

describe('readahead', () => {
  it('turns sequential misses over a slow source into readahead, with fewer demand round trips', async () => {
    const data = patternBytes(8 * MiB, 11);
    const run = async (readahead: number) => {
      const d = await mkdtemp(join(dir, 'r'));
      const cache = await BlockCache.open(d, { ...noFloor, readahead });
      const src = new CountingSource(new MemoryFile(data), 20);
      const blob = cache.open(key(1), src);
      const t0 = performance.now();
      await readSeq(blob, data, 0, data.length, 128 * KiB);
      const ms = performance.now() - t0;
      await cache.flush();
      const s = blob.stats();
      expect(blob.isComplete()).toBe(true);
      await blob.close();
      await cache.close();
      return { ms, s, src };
    };
    const off = await run(0);
    const on = await run(MiB);
    expect(off.s.readaheadFetches).toBe(0);
    expect(off.s.fetches).toBe(32); // one demand miss per refill unit
    const demandOn = on.s.fetches - on.s.readaheadFetches;
    expect(on.s.readaheadBytes).toBeGreaterThan(4 * MiB);
    expect(on.s.readaheadHits).toBeGreaterThan(16);
    expect(on.s.readaheadHitBytes).toBe(on.s.readaheadBytes); // a sequential scan uses all of it
    expect(demandOn).toBeLessThan(off.s.fetches / 4);
    // Nothing fetched twice, nothing beyond the blob.
    expect(on.src.bytes).toBe(data.length);
    expect(on.ms).toBeLessThan(off.ms);
  });

  it('does not read ahead for random reads', async () => {
    const size = 2 * 1024 * MiB;
    const cache = await BlockCache.open(dir, noFloor);
    const blob = cache.open(key(2), zeros(size));
    let x = 12345;
    for (let i = 0; i < 300; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      const off = Math.floor((x / 0x80000000) * (size / (4 * KiB))) * 4 * KiB;
      await blob.read(Buffer.alloc(4 * KiB), off);
    }
    const s = blob.stats();
    expect(s.readaheadBytes).toBeLessThanOrEqual(0.02 * s.fetchBytes);
    await blob.close();
    await cache.close();
  });

  it("by default widens a read to the demand grain's blocks it touches, and a prefetch fetches 4 KiB pages", async () => {
    const data = patternBytes(4 * MiB, 13);
    const cache = await BlockCache.open(dir, { diskFloor: 0 });
    expect(cache.refillSize).toBe(DEFAULT_REFILL_SIZE);
    expect(cache.demandGrain).toBe(DEFAULT_DEMAND_GRAIN);
    const U = DEFAULT_DEMAND_GRAIN;
    const P = DEFAULT_REFILL_SIZE;
    const src = new HoldSource(data);
    const blob = cache.open(key(13), src);
    // A ZFile-sized read (a few compressed blocks) far into the blob, crossing a block boundary.
    const at = 100 * U + U - 3000;
    const buf = Buffer.alloc(5000);
    await blob.read(buf, at);
    expect(buf.equals(data.subarray(at, at + 5000))).toBe(true);
    expect(src.log).toEqual([[100 * U, 2 * U]]);
    // Two reads away from it: each its own block, no readahead (not a sequential stream).
    await blob.read(Buffer.alloc(100), 10 * U + 5);
    await blob.read(Buffer.alloc(100), 200 * U);
    expect(src.log.slice(1)).toEqual([
      [10 * U, U],
      [200 * U, U],
    ]);
    expect(blob.stats().readaheadFetches).toBe(0);
    // A prefetch of a few bytes fetches the page holding them; a read beside it is widened only
    // up to a cached page (one contiguous fetch), a read past that to the rest of its block.
    await blob.prefetch(150 * U + P + 10, 100);
    expect(src.log.at(-1)).toEqual([150 * U + P, P]);
    await blob.read(Buffer.alloc(100), 150 * U + 10);
    expect(src.log.at(-1)).toEqual([150 * U, P]);
    await blob.read(Buffer.alloc(100), 150 * U + 3 * P);
    expect(src.log.at(-1)).toEqual([150 * U + 2 * P, 2 * P]);
    await blob.close();
    await cache.close();
  });

  it('is off with readahead: 0 and rounds the window to refill units', async () => {
    const data = patternBytes(4 * MiB, 12);
    const cache = await BlockCache.open(dir, { ...noFloor, readahead: 0 });
    expect(cache.readahead).toBe(0);
    const blob = cache.open(key(3), new MemoryFile(data));
    await readSeq(blob, data, 0, data.length, 64 * KiB);
    expect(blob.stats().readaheadFetches).toBe(0);
    await blob.close();
    await cache.close();
    const c2 = await BlockCache.open(dir, { ...noFloor, readahead: 1000 });
    expect(c2.readahead).toBe(R);
    expect((await BlockCache.open(dir, noFloor)).readahead).toBe(MiB);
    await expect(BlockCache.open(dir, { readahead: -1 })).rejects.toThrow(/readahead/);
    await c2.close();
  });

  it('never makes a read wait for readahead it does not need, and a demand read joins readahead in flight', async () => {
    const data = patternBytes(4 * MiB, 13);
    const src = new HoldSource(data);
    const cache = await BlockCache.open(dir, noFloor);
    const blob = cache.open(key(4), src);
    src.held.add(3 * R); // the first readahead (unit 3) hangs
    // Units 0, 1, 2: moving on into a new unit twice starts readahead of unit 3.
    await readSeq(blob, data, 0, 3 * R, 64 * KiB);
    expect(src.log).toEqual([
      [0, R],
      [R, R],
      [2 * R, R],
      [3 * R, R],
    ]);
    expect(blob.stats().readaheadInflight).toBe(1);
    // A read elsewhere is not held up by it.
    await readSeq(blob, data, 3 * MiB, 3 * MiB + 4 * KiB, 4 * KiB);
    // A read of unit 3 joins the readahead instead of fetching it again.
    const joined0 = blob.stats().joinedBytes;
    const buf = Buffer.alloc(8 * KiB);
    let done = false;
    const p = blob.read(buf, 3 * R + 100).then(() => (done = true));
    await sleep(5);
    expect(done).toBe(false);
    expect(src.log.filter(([o]) => o === 3 * R)).toHaveLength(1);
    src.release(3 * R);
    await p;
    expect(buf.equals(data.subarray(3 * R + 100, 3 * R + 100 + 8 * KiB))).toBe(true);
    const s = blob.stats();
    expect(s.joinedBytes - joined0).toBe(8 * KiB);
    expect(s.readaheadHits).toBe(1);
    expect(s.readaheadHitBytes).toBe(R);
    await blob.close();
    await cache.close();
  });

  it('lets a reader that joined a failed readahead fetch read the range again', async () => {
    const data = patternBytes(4 * MiB, 14);
    const src = new HoldSource(data);
    const cache = await BlockCache.open(dir, noFloor);
    const blob = cache.open(key(5), src);
    src.held.add(3 * R);
    src.failAt.add(3 * R);
    await readSeq(blob, data, 0, 3 * R, 128 * KiB);
    const buf = Buffer.alloc(R);
    const p = blob.read(buf, 3 * R);
    await sleep(2);
    src.release(3 * R);
    await p;
    expect(buf.equals(data.subarray(3 * R, 4 * R))).toBe(true);
    expect(blob.stats().fetchErrors).toBe(1);
    await blob.close();
    await cache.close();
  });

  it('persists readahead like any fill: it survives a restart, and evict() drops it in flight', async () => {
    const data = patternBytes(4 * MiB, 15);
    let cache = await BlockCache.open(dir, noFloor);
    const src = new HoldSource(data);
    let blob = cache.open(key(6), src);
    await readSeq(blob, data, 0, 3 * R, 128 * KiB);
    await cache.flush();
    // Units 0–2 read, unit 3 read ahead: all recorded.
    expect(blob.cachedBytes()).toBe(4 * R);
    // The next readahead (units 4–5) held, then evicted while in flight: not recorded.
    src.held.add(4 * R);
    await readSeq(blob, data, 3 * R, 3 * R + 128 * KiB, 128 * KiB);
    expect(src.log.at(-1)).toEqual([4 * R, 2 * R]);
    await blob.evict(4 * R, 2 * R);
    src.release(4 * R);
    await cache.flush();
    expect(blob.cachedBytes()).toBe(4 * R);
    await blob.close();
    await cache.close();
    cache = await BlockCache.open(dir, noFloor);
    const src2 = new CountingSource(new MemoryFile(data));
    blob = cache.open(key(6), src2);
    await blob.read(Buffer.alloc(0), 0);
    expect(blob.cachedBytes()).toBe(4 * R);
    await readSeq(blob, data, 0, 4 * R, 64 * KiB);
    // Only readahead beyond the cached units goes to the source.
    expect(src2.log.every(([o]) => o >= 4 * R)).toBe(true);
    expect(blob.stats().readaheadFetches).toBe(src2.requests);
    await blob.close();
    await cache.close();
  });

  it('never returns wrong bytes: sequential and random reads, concurrent, with failures, corruption and evictions', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 * MiB }),
        fc.constantFrom(4 * KiB, 16 * KiB, 64 * KiB),
        fc.array(
          fc.record({
            start: fc.nat(),
            chunk: fc.integer({ min: 1, max: 96 * KiB }),
            count: fc.integer({ min: 1, max: 24 }),
            evict: fc.boolean(),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (size, refillSize, streams, seed) => {
          const d = await mkdtemp(join(dir, 'p'));
          const data = patternBytes(size, size + 3);
          const faulty = new FaultySource(new MemoryFile(data), { fail: 0.1, corrupt: 0.1, random: rng(seed) });
          const cache = await BlockCache.open(d, {
            ...noFloor,
            refillSize,
            maxFetchSize: 4 * refillSize,
            readahead: 8 * refillSize,
          });
          const blob = cache.open(key(7), faulty, {
            verify: (off, got) => Buffer.from(got).equals(data.subarray(off, off + got.length)),
          });
          await Promise.all(
            streams.map(async ({ start, chunk, count, evict }) => {
              let o = start % size;
              for (let i = 0; i < count && o < size; i++, o += chunk) {
                const buf = Buffer.alloc(chunk);
                try {
                  const n = await blob.read(buf, o);
                  expect(buf.subarray(0, n).equals(data.subarray(o, o + n))).toBe(true);
                } catch (e) {
                  expect(['EIO', 'ECORRUPT']).toContain((e as DadiError).code);
                }
                if (evict && i % 5 === 2) await blob.evict(o, chunk * 3);
              }
            }),
          );
          await cache.flush();
          faulty.faults = { random: faulty.faults.random };
          const all = Buffer.alloc(size);
          expect(await blob.read(all, 0)).toBe(size);
          expect(all.equals(data)).toBe(true);
          await blob.close();
          await cache.close();
        },
      ),
      { numRuns: 30 },
    );
  });
});
