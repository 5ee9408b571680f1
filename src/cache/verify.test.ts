import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testRandom } from '../../test/seed.js';
import type { BlockFile } from '../blockfile/blockfile.js';
import { MemoryFile } from '../blockfile/memory.js';
import { BlockCache } from './cache.js';
import { CountingSource, FaultySource, patternBytes, sleep } from './testing.js';
import { readVerified } from './verify.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const key = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-cache-verify-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fetch verifier', () => {
  it('refetches ranges the verifier rejects; never returns or caches wrong bytes', async () => {
    const data = patternBytes(2 * MiB, 50);
    const faulty = new FaultySource(new MemoryFile(data), { corrupt: 0.3, random: testRandom(1) });
    const verify = (off: number, b: Uint8Array) => Buffer.from(b).equals(data.subarray(off, off + b.length));
    const cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 64 * KiB });
    const blob = cache.open(key(1), faulty, { verify });
    const r = testRandom(2);
    let failures = 0;
    for (let i = 0; i < 300; i++) {
      const off = Math.floor(r() * data.length);
      const b = Buffer.alloc(Math.floor(r() * 100 * KiB));
      try {
        const n = await blob.read(b, off);
        expect(b.subarray(0, n).equals(data.subarray(off, off + n))).toBe(true);
      } catch (e) {
        expect((e as { code?: string }).code).toBe('ECORRUPT'); // 0.3³ per fetch: possible, rare
        failures++;
      }
    }
    await cache.flush();
    expect(faulty.corrupted).toBeGreaterThan(0);
    expect(blob.stats().verifyFailures).toBe(faulty.corrupted);
    expect(failures).toBeLessThan(10);
    // Everything cached is right.
    faulty.faults = { random: faulty.faults.random };
    const all = Buffer.alloc(data.length);
    await blob.read(all, 0);
    expect(all.equals(data)).toBe(true);
    await blob.close();
    await cache.close();
  });

  it('fails with ECORRUPT after 3 rejected fetches', async () => {
    const data = patternBytes(MiB, 51);
    const faulty = new FaultySource(new MemoryFile(data), { corrupt: 1, random: testRandom(4) });
    const cache = await BlockCache.open(dir, { diskFloor: 0 });
    const blob = cache.open(key(2), faulty, { verify: () => false });
    await expect(blob.read(Buffer.alloc(10), 0)).rejects.toMatchObject({ code: 'ECORRUPT' });
    expect(faulty.requests).toBe(3);
    await blob.close();
    await cache.close();
  });
});

describe('readVerified with evict', () => {
  const BLOCK = 4 * KiB;

  /** Read block i through the cache, checking it against its CRC as a ZFile reader would. */
  function readBlock(blob: Awaited<ReturnType<BlockCache['open']>>, data: Buffer, i: number) {
    const off = i * BLOCK;
    const want = crc32c(data.subarray(off, off + BLOCK));
    return readVerified({
      read: async () => {
        const b = Buffer.alloc(BLOCK);
        await blob.read(b, off);
        return b;
      },
      verify: (b) => crc32c(b) === want,
      evict: () => blob.evict(off, BLOCK),
      what: `block ${i}`,
    });
  }

  it('evicts and re-reads corrupted blocks: 0 wrong bytes over 1000 faulty reads', async () => {
    const data = patternBytes(4 * MiB, 52);
    const faulty = new FaultySource(new MemoryFile(data), { corrupt: 0.25, random: testRandom(3) });
    const cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 16 * KiB });
    const blob = cache.open(key(3), faulty);
    const r = testRandom(5);
    let corruptErrors = 0;
    const blocks = data.length / BLOCK;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let k = 0; k < 125; k++) {
          const i = Math.floor(r() * blocks);
          try {
            const b = await readBlock(blob, data, i);
            expect(b.equals(data.subarray(i * BLOCK, (i + 1) * BLOCK))).toBe(true);
          } catch (e) {
            expect((e as { code?: string }).code).toBe('ECORRUPT');
            corruptErrors++;
          }
        }
      }),
    );
    expect(faulty.corrupted).toBeGreaterThan(20);
    expect(corruptErrors).toBeLessThan(20);
    expect(blob.stats().evictions).toBeGreaterThan(0);
    await blob.close();
    await cache.close();
  });

  it('fails with ECORRUPT after 3 tries, refetching each time', async () => {
    const data = patternBytes(MiB, 53);
    const src = new CountingSource(new MemoryFile(Buffer.alloc(MiB))); // every byte wrong
    const cache = await BlockCache.open(dir, { diskFloor: 0 });
    const blob = cache.open(key(4), src);
    await expect(readBlock(blob, data, 10)).rejects.toMatchObject({ code: 'ECORRUPT', message: /block 10/ });
    expect(src.requests).toBe(3);
    await blob.close();
    await cache.close();
  });

  it('propagates read errors without retrying, counts tries', async () => {
    let n = 0;
    await expect(
      readVerified({
        read: async () => {
          n++;
          throw new Error('gone');
        },
        verify: () => true,
        what: 'x',
      }),
    ).rejects.toThrow('gone');
    expect(n).toBe(1);
    const seen: number[] = [];
    let reads = 0;
    const v = await readVerified({
      read: async () => ++reads,
      verify: (x) => x === 2,
      what: 'x',
      onFailure: (a) => seen.push(a),
    });
    expect(v).toBe(2);
    expect(seen).toEqual([1]);
  });
});

describe('evict', () => {
  it('drops an in-flight fetch of the range from the cache, and persists the eviction', async () => {
    const data = patternBytes(MiB, 54);
    let gate: (() => void) | undefined;
    let requests = 0;
    const src: BlockFile = {
      name: 'gated',
      size: data.length,
      async read(buf, off) {
        requests++;
        if (requests === 1) await new Promise<void>((r) => (gate = r));
        buf.set(data.subarray(off, off + buf.length));
        return buf.length;
      },
      async close() {},
    };
    let cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 64 * KiB });
    let blob = cache.open(key(5), src);
    const first = blob.read(Buffer.alloc(KiB), 0);
    await sleep(5);
    await blob.evict(0, KiB);
    gate!();
    await first;
    await cache.flush();
    expect(blob.cachedBytes()).toBe(0);
    await blob.read(Buffer.alloc(KiB), 0);
    expect(requests).toBe(2);
    await cache.flush();
    expect(blob.cachedBytes()).toBe(64 * KiB);
    // Evict a cached page: durable across a restart.
    await blob.evict(8 * KiB, 1);
    expect(blob.cachedBytes()).toBe(60 * KiB);
    await blob.close();
    await cache.close();
    cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 64 * KiB });
    blob = cache.open(key(5), new MemoryFile(data));
    const b = Buffer.alloc(64 * KiB);
    await blob.read(b, 0);
    expect(b.equals(data.subarray(0, 64 * KiB))).toBe(true);
    expect(blob.stats().missBytes).toBe(64 * KiB);
    await blob.close();
    await cache.close();
  });
});
