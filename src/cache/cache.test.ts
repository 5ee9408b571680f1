import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlockFile } from '../blockfile/blockfile.js';
import { MemoryFile } from '../blockfile/memory.js';
import { DadiError } from '../errors.js';
import { BufferPool } from '../util/buffer-pool.js';
import { BlockCache, type BlockCacheOptions } from './cache.js';
import { CountingSource, patternBytes, sleep } from './testing.js';
import { verifyBlobDigest } from './verify.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const key = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const noFloor: BlockCacheOptions = { diskFloor: 0 };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-cache-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A source whose reads wait until the test opens their gate; tracks concurrency. */
class GatedSource implements BlockFile {
  readonly name = 'gated';
  requests = 0;
  active = 0;
  maxActive = 0;
  private waiting: Array<{ offset: number; go: () => void }> = [];
  open = false;
  constructor(readonly data: Uint8Array) {}
  get size(): number {
    return this.data.length;
  }
  async read(buf: Uint8Array, offset: number): Promise<number> {
    this.requests++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    if (!this.open) await new Promise<void>((go) => this.waiting.push({ offset, go }));
    this.active--;
    const n = Math.min(buf.length, this.size - offset);
    buf.set(this.data.subarray(offset, offset + n));
    return n;
  }
  /** Release the waiting reads at `offset` (all when undefined). */
  release(offset?: number): void {
    const keep: typeof this.waiting = [];
    for (const w of this.waiting) offset === undefined || w.offset === offset ? w.go() : keep.push(w);
    this.waiting = keep;
  }
  get queued(): number {
    return this.waiting.length;
  }
  async close(): Promise<void> {}
}

async function dirUsage(d: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(d)) n += (await stat(join(d, name))).blocks * 512;
  return n;
}

describe('CachedBlob reads', () => {
  it('returns the source bytes for random reads, concurrent or not, and again after a restart', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 300 * KiB }),
        fc.constantFrom(4 * KiB, 16 * KiB, 64 * KiB),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 200 * KiB })), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        async (size, refillSize, reads, concurrent) => {
          const d = await mkdtemp(join(dir, 'p'));
          const data = patternBytes(size, size + 7);
          const src = new CountingSource(new MemoryFile(data));
          let cache = await BlockCache.open(d, { ...noFloor, refillSize, maxFetchSize: 4 * refillSize });
          let blob = cache.open(key(1), src);
          const one = async (o: number, len: number) => {
            const off = size ? o % (size + 10) : 0;
            const buf = Buffer.alloc(len);
            const n = await blob.read(buf, off);
            const want = Math.max(0, Math.min(len, size - off));
            expect(n).toBe(want);
            expect(buf.subarray(0, n).equals(data.subarray(off, off + n))).toBe(true);
          };
          if (concurrent) await Promise.all(reads.map(([o, l]) => one(o, l)));
          else for (const [o, l] of reads) await one(o, l);
          await cache.flush();
          const cached = blob.cachedBytes();
          await blob.close();
          await cache.close();

          const src2 = new CountingSource(new MemoryFile(data));
          cache = await BlockCache.open(d, { ...noFloor, refillSize });
          blob = cache.open(key(1), src2);
          expect(await blob.read(Buffer.alloc(0), 0)).toBe(0);
          expect(blob.cachedBytes()).toBe(cached);
          for (const [o, l] of reads) await one(o, l);
          expect(src2.requests).toBe(0);
          const all = Buffer.alloc(size);
          expect(await blob.read(all, 0)).toBe(size);
          expect(all.equals(data)).toBe(true);
          await blob.close();
          await cache.close();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('fetches a range once however many reads want it at the same time', async () => {
    const data = patternBytes(MiB, 3);
    const src = new GatedSource(data);
    // Every read below falls in one 256 KiB unit.
    const cache = await BlockCache.open(dir, { ...noFloor, refillSize: 256 * KiB });
    const blob = cache.open(key(2), src);
    const reads = Array.from({ length: 20 }, (_, i) => {
      const buf = Buffer.alloc(8 * KiB);
      return blob.read(buf, 100 * KiB + i * 512).then(() => buf);
    });
    await sleep(5);
    expect(src.requests).toBe(1);
    src.open = true;
    src.release();
    const bufs = await Promise.all(reads);
    bufs.forEach((b, i) => {
      const o = 100 * KiB + i * 512;
      expect(b.equals(data.subarray(o, o + 8 * KiB))).toBe(true);
    });
    expect(src.requests).toBe(1);
    const s = blob.stats();
    expect(s.fetches).toBe(1);
    expect(s.joinedBytes).toBe(19 * 8 * KiB);
    await cache.flush();
    // Recorded now: further reads are hits.
    await blob.read(Buffer.alloc(4 * KiB), 0);
    expect(src.requests).toBe(1);
    expect(blob.stats().hitBytes).toBe(4 * KiB);
    await blob.close();
    await cache.close();
  });

  it('reuses fetch buffers from a pool once done with them, and every reader still gets the source bytes', async () => {
    const data = patternBytes(2 * MiB, 5);
    const pool = new BufferPool(64 * KiB, 4);
    // A tiny pending budget drops most fills at once: their buffers go back while readers that
    // joined them are still to copy, the case the pool must wait out.
    for (const maxPendingBytes of [64 * KiB, 64 * MiB]) {
      const d = await mkdtemp(join(tmpdir(), 'dadi-cache-pool-'));
      try {
        const cache = await BlockCache.open(d, {
          ...noFloor,
          refillSize: 64 * KiB,
          maxFetchSize: 128 * KiB,
          maxPendingBytes,
          readahead: 0,
          buffers: pool,
        });
        const blob = cache.open(key(9), new CountingSource(new MemoryFile(data)));
        let x = 7;
        const next = (n: number) => {
          x = (x * 1103515245 + 12345) % 2 ** 31;
          return x % n;
        };
        for (let round = 0; round < 6; round++) {
          const reads = Array.from({ length: 24 }, () => {
            const offset = next(data.length - 1);
            const buf = Buffer.alloc(Math.min(1 + next(200 * KiB), data.length - offset));
            return blob.read(buf, offset).then((n) => ({ offset, buf, n }));
          });
          for (const r of await Promise.all(reads)) {
            expect(r.n).toBe(r.buf.length);
            expect(r.buf.equals(data.subarray(r.offset, r.offset + r.n))).toBe(true);
          }
          await cache.flush();
        }
        await new Promise((r) => setImmediate(r));
        expect(pool.idle).toBeGreaterThan(0);
        expect(pool.idle).toBeLessThanOrEqual(4);
        await blob.close();
        await cache.close();
      } finally {
        await rm(d, { recursive: true, force: true });
      }
    }
  });

  it('coalesces adjacent misses into one source read, and splits large reads into parallel fetches', async () => {
    const data = patternBytes(8 * MiB, 4);
    const src = new GatedSource(data);
    src.open = true;
    const counting = new CountingSource(src);
    const cache = await BlockCache.open(dir, { ...noFloor, refillSize: 64 * KiB, maxFetchSize: 256 * KiB });
    const blob = cache.open(key(3), counting);
    // 200 KiB at an unaligned offset touches 4 units → one 256 KiB fetch.
    const buf = Buffer.alloc(200 * KiB);
    await blob.read(buf, 10 * KiB);
    expect(counting.log).toEqual([[0, 256 * KiB]]);
    expect(buf.equals(data.subarray(10 * KiB, 210 * KiB))).toBe(true);
    await cache.flush();
    // 2 MiB read: 32 units → 8 fetches of 256 KiB, all in flight together.
    src.open = false;
    const big = Buffer.alloc(2 * MiB);
    const p = blob.read(big, 4 * MiB);
    await sleep(5);
    expect(src.queued).toBe(8);
    src.open = true;
    src.release();
    await p;
    expect(big.equals(data.subarray(4 * MiB, 6 * MiB))).toBe(true);
    expect(counting.log.slice(1).every(([, l]) => l === 256 * KiB)).toBe(true);
    // A read spanning cached units and a hole fetches only the hole (split at maxFetchSize).
    await cache.flush();
    const n0 = counting.requests;
    const mix = Buffer.alloc(600 * KiB);
    await blob.read(mix, 0);
    expect(mix.equals(data.subarray(0, 600 * KiB))).toBe(true);
    expect(counting.log.slice(n0)).toEqual([
      [256 * KiB, 256 * KiB],
      [512 * KiB, 128 * KiB],
    ]);
    await blob.close();
    await cache.close();
  });

  it('does not make a read wait for an unrelated fetch', async () => {
    const data = patternBytes(4 * MiB, 5);
    const src = new GatedSource(data);
    const cache = await BlockCache.open(dir, noFloor);
    const blob = cache.open(key(4), src);
    let slowDone = false;
    const slow = blob.read(Buffer.alloc(4 * KiB), 0).then(() => (slowDone = true));
    await sleep(2);
    const fast = blob.read(Buffer.alloc(4 * KiB), 2 * MiB);
    await sleep(2);
    src.release(2 * MiB);
    await fast;
    expect(slowDone).toBe(false);
    src.open = true;
    src.release();
    await slow;
    await blob.close();
    await cache.close();
  });

  it('passes source errors through and retries on the next read', async () => {
    const data = patternBytes(MiB, 6);
    let fail = true;
    const src: BlockFile = {
      name: 'flaky',
      size: data.length,
      async read(buf, off) {
        if (fail) throw new DadiError('EIO', 'flaky: boom');
        buf.set(data.subarray(off, off + buf.length));
        return Math.min(buf.length, data.length - off);
      },
      async close() {},
    };
    const cache = await BlockCache.open(dir, noFloor);
    const blob = cache.open(key(5), src);
    await expect(blob.read(Buffer.alloc(100), 5000)).rejects.toThrow('boom');
    fail = false;
    const b = Buffer.alloc(100);
    await blob.read(b, 5000);
    expect(b.equals(data.subarray(5000, 5100))).toBe(true);
    expect(blob.stats().fetchErrors).toBe(1);
    await blob.close();
    await cache.close();
  });

  it('shares state between handles of one key and rejects a different size', async () => {
    const data = patternBytes(300 * KiB, 7);
    const cache = await BlockCache.open(dir, noFloor);
    const a = cache.open(key(6), new CountingSource(new MemoryFile(data)));
    const src2 = new CountingSource(new MemoryFile(data));
    const b = cache.open(key(6), src2);
    await a.read(Buffer.alloc(300 * KiB), 0);
    await cache.flush();
    await b.read(Buffer.alloc(300 * KiB), 0);
    expect(src2.requests).toBe(0);
    expect(() => cache.open(key(6), new MemoryFile(10))).toThrow(/size/);
    expect(() => cache.open('../etc/passwd', new MemoryFile(10))).toThrow(/digest/);
    await a.close();
    await b.close();
    await cache.close();
  });
});

describe('crash leftovers and damaged files', () => {
  it('starts a blob over when its map or data file does not validate', async () => {
    const data = patternBytes(200 * KiB, 8);
    let cache = await BlockCache.open(dir, noFloor);
    let blob = cache.open(key(7), new MemoryFile(data));
    await blob.read(Buffer.alloc(data.length), 0);
    await blob.close();
    await cache.close();
    // A torn header: the entry is reset, reads fetch again and stay correct.
    const mapPath = join(dir, `${key(7)}.map`);
    const { open } = await import('node:fs/promises');
    const fh = await open(mapPath, 'r+');
    await fh.write(Buffer.from([0xee]), 0, 1, 20);
    await fh.close();
    cache = await BlockCache.open(dir, noFloor);
    const src = new CountingSource(new MemoryFile(data));
    blob = cache.open(key(7), src);
    const b = Buffer.alloc(data.length);
    await blob.read(b, 0);
    expect(b.equals(data)).toBe(true);
    expect(src.requests).toBeGreaterThan(0);
    await blob.close();
    await cache.close();
    // A data file from another creation (nonce mismatch): reset too.
    await rm(join(dir, `${key(7)}.data`));
    await writeFile(join(dir, `${key(7)}.data`), Buffer.alloc(256 * KiB, 0x55));
    cache = await BlockCache.open(dir, noFloor);
    const src3 = new CountingSource(new MemoryFile(data));
    blob = cache.open(key(7), src3);
    await blob.read(b.fill(0), 0);
    expect(b.equals(data)).toBe(true);
    expect(src3.requests).toBeGreaterThan(0);
    await blob.close();
    await cache.close();
  });

  it('removes old orphans and temporary files at start-up, keeps recent ones', async () => {
    const { utimes } = await import('node:fs/promises');
    const old = new Date(Date.now() - 3600_000);
    for (const name of [`${key(1)}.data`, `${key(2)}.map`, `${key(3)}.data.1.ab.tmp`, `${key(4)}.data`]) {
      await writeFile(join(dir, name), 'x');
      if (!name.startsWith(key(4))) await utimes(join(dir, name), old, old);
    }
    const cache = await BlockCache.open(dir, noFloor);
    expect((await readdir(dir)).sort()).toEqual([`${key(4)}.data`]);
    expect(await cache.ls()).toEqual([]);
    await cache.close();
  });
});

describe('capacity and eviction', () => {
  it('stays under a capacity below the working set, and every read stays correct', async () => {
    const R = 64 * KiB;
    const cap = 1 * MiB;
    const blobs = Array.from({ length: 5 }, (_, i) => patternBytes(512 * KiB + i * 1000, 100 + i));
    const cache = await BlockCache.open(dir, { ...noFloor, capacity: cap, refillSize: R });
    const handles = blobs.map((d, i) => cache.open(key(100 + i), new MemoryFile(d)));
    let seed = 1;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    let maxUsage = 0;
    for (let round = 0; round < 30; round++) {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          const i = Math.floor(rnd() * blobs.length);
          const d = blobs[i]!;
          const off = Math.floor(rnd() * d.length);
          const len = Math.floor(rnd() * 150 * KiB);
          const buf = Buffer.alloc(len);
          const n = await handles[i]!.read(buf, off);
          expect(buf.subarray(0, n).equals(d.subarray(off, off + n))).toBe(true);
        }),
      );
      await cache.flush();
      maxUsage = Math.max(maxUsage, cache.usage, await dirUsage(dir));
    }
    expect(maxUsage).toBeLessThanOrEqual(cap + R);
    const s = cache.stats();
    expect(s.blobEvictions).toBeGreaterThan(0);
    expect(s.usage).toBeLessThanOrEqual(cap + R);
    // Usage survives a restart (recomputed from allocated blocks).
    for (const h of handles) await h.close();
    await cache.close();
    const again = await BlockCache.open(dir, { ...noFloor, capacity: cap, refillSize: R });
    expect(again.usage).toBe(await dirUsage(dir));
    await again.close();
  });

  it('evicts the least recently used blob first', async () => {
    const R = 64 * KiB;
    const cache = await BlockCache.open(dir, { ...noFloor, capacity: 700 * KiB, refillSize: R });
    const d = [0, 1, 2].map((i) => patternBytes(256 * KiB, i + 1));
    const hs = d.map((x, i) => cache.open(key(200 + i), new MemoryFile(x)));
    for (const i of [0, 1]) {
      await hs[i]!.read(Buffer.alloc(256 * KiB), 0);
      await cache.flush();
    }
    await hs[0]!.read(Buffer.alloc(4 * KiB), 0); // 0 is now more recent than 1
    await hs[2]!.read(Buffer.alloc(256 * KiB), 0);
    await cache.flush();
    expect((await cache.ls()).map((e) => e.key)).toEqual([key(200), key(202)]);
    for (const h of hs) await h.close();
    await cache.close();
  });

  it('keeps reads correct when an open blob is evicted during reads', async () => {
    const data = patternBytes(2 * MiB, 9);
    const cache = await BlockCache.open(dir, { ...noFloor, refillSize: 64 * KiB });
    const blob = cache.open(key(8), new CountingSource(new MemoryFile(data), 1));
    await blob.read(Buffer.alloc(MiB), 0);
    await cache.flush();
    const reads = Array.from({ length: 40 }, async (_, i) => {
      const off = (i * 37 * KiB) % (2 * MiB - 64 * KiB);
      const b = Buffer.alloc(64 * KiB);
      await blob.read(b, off);
      expect(b.equals(data.subarray(off, off + 64 * KiB))).toBe(true);
    });
    const gcs = [cache.gc(0), sleep(3).then(() => cache.gc(0)), sleep(6).then(() => cache.clear())];
    await Promise.all([...reads, ...gcs]);
    const all = Buffer.alloc(2 * MiB);
    await blob.read(all, 0);
    expect(all.equals(data)).toBe(true);
    await blob.close();
    await cache.close();
  });

  it('keeps the free-disk floor, evicting LRU blobs, then caching no more', async () => {
    const R = 64 * KiB;
    // A fake file system of 4 MiB whose only user is the cache; floor 2 MiB → about 2 MiB usable.
    const total = 4 * MiB;
    const statfs = async (d: string) => ({ bavail: (total - (await dirUsage(d))) / 4096, bsize: 4096 });
    const cache = await BlockCache.open(dir, { diskFloor: 2 * MiB, refillSize: R, statfs });
    const d = [0, 1, 2].map((i) => patternBytes(MiB, 20 + i));
    const hs = d.map((x, i) => cache.open(key(300 + i), new MemoryFile(x)));
    for (const i of [0, 1, 2]) {
      const b = Buffer.alloc(MiB);
      await hs[i]!.read(b, 0);
      expect(b.equals(d[i]!)).toBe(true);
      await cache.flush();
      expect(total - (await dirUsage(dir))).toBeGreaterThanOrEqual(2 * MiB - R);
    }
    expect(cache.stats().blobEvictions).toBeGreaterThan(0);
    expect((await cache.ls()).map((e) => e.key)).not.toContain(key(300));
    // Nothing left to evict but the blob being filled: reads still work, fills are skipped.
    const big = patternBytes(3 * MiB, 30);
    await cache.gc(0);
    const h = cache.open(key(399), new MemoryFile(big));
    const b = Buffer.alloc(3 * MiB);
    await h.read(b, 0);
    await cache.flush();
    expect(b.equals(big)).toBe(true);
    expect(h.stats().persistSkipped).toBeGreaterThan(0);
    expect(total - (await dirUsage(dir))).toBeGreaterThanOrEqual(2 * MiB - R);
    for (const x of [...hs, h]) await x.close();
    await cache.close();
  });
});

describe('ls, gc, clear, stats', () => {
  it('lists entries with sizes and cached bytes, collects and clears', async () => {
    const cache = await BlockCache.open(dir, { ...noFloor, refillSize: 64 * KiB });
    const a = cache.open(key(10), new MemoryFile(patternBytes(300 * KiB, 1)));
    const b = cache.open(key(11), new MemoryFile(patternBytes(100 * KiB, 2)));
    await a.read(Buffer.alloc(10), 0);
    await b.read(Buffer.alloc(100 * KiB), 0);
    await cache.flush();
    await a.close();
    let ls = await cache.ls();
    expect(ls.map(({ key, size, cachedBytes, open }) => ({ key, size, cachedBytes, open }))).toEqual([
      { key: key(10), size: 300 * KiB, cachedBytes: 64 * KiB, open: false },
      { key: key(11), size: 100 * KiB, cachedBytes: 100 * KiB, open: true },
    ]);
    expect(ls[0]!.allocatedBytes).toBeGreaterThanOrEqual(64 * KiB);
    const s = cache.stats();
    expect(s.entries).toBe(2);
    expect(s.fetchBytes).toBe(64 * KiB + 100 * KiB);
    expect(s.usage).toBe(await dirUsage(dir));
    const r = await cache.gc(ls[1]!.allocatedBytes);
    expect(r.evicted).toEqual([key(10)]);
    ls = await cache.ls();
    expect(ls.map((e) => e.key)).toEqual([key(11)]);
    await cache.clear();
    expect(await cache.ls()).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
    const c = Buffer.alloc(100 * KiB);
    await b.read(c, 0);
    expect(c.equals(patternBytes(100 * KiB, 2))).toBe(true);
    await b.close();
    await cache.close();
  });

  it('verifies a whole blob against its digest', async () => {
    const { createHash } = await import('node:crypto');
    const data = patternBytes(3 * MiB + 5, 40);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const cache = await BlockCache.open(dir, noFloor);
    const good = cache.open(digest, new MemoryFile(data));
    await verifyBlobDigest(good);
    await cache.flush();
    expect(good.isComplete()).toBe(true);
    await good.close();
    const bad = cache.open(key(12), new MemoryFile(data));
    await expect(verifyBlobDigest(bad)).rejects.toMatchObject({ code: 'ECORRUPT' });
    expect(bad.cachedBytes()).toBe(0);
    await bad.close();
    await cache.close();
  });
});

describe('resources', () => {
  it('closes every file it opened (evictions, reopen, close)', async () => {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    const cache = await BlockCache.open(dir, { ...noFloor, capacity: 600 * KiB, refillSize: 64 * KiB });
    for (let round = 0; round < 3; round++) {
      const hs = [0, 1, 2].map((i) => cache.open(key(500 + i), new MemoryFile(patternBytes(256 * KiB, i + 1))));
      await Promise.all(hs.map((h) => h.read(Buffer.alloc(256 * KiB), 0)));
      await cache.flush();
      await cache.gc(100 * KiB);
      await Promise.all(hs.map((h) => h.read(Buffer.alloc(100 * KiB), 50 * KiB)));
      for (const h of hs) await h.close();
    }
    await cache.close();
    await sleep(10);
    expect(await fds()).toBe(before);
  });
});
