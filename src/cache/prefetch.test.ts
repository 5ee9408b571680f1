import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryFile } from '../blockfile/memory.js';
import { BlockCache } from './cache.js';
import { CountingSource, patternBytes } from './testing.js';

const KiB = 1024;
const key = `sha256:${'ab'.repeat(32)}`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-cache-prefetch-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CachedBlob.prefetch (background pull)', () => {
  it('fetches only uncached units, counts them as background, and later reads hit the cache', async () => {
    const data = patternBytes(300 * KiB + 123, 7);
    const cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 16 * KiB, readahead: 0 });
    const src = new CountingSource(new MemoryFile(data));
    const blob = cache.open(key, src);
    try {
      const buf = Buffer.alloc(10);
      await blob.read(buf, 40 * KiB); // a foreground read caches unit 2
      await cache.flush();
      expect(await blob.holds(32 * KiB, 16 * KiB)).toBe(true);
      expect(await blob.holds(0, 64 * KiB)).toBe(false);
      const before = src.bytes;
      await blob.prefetch(0, 64 * KiB);
      expect(src.bytes - before).toBe(48 * KiB); // units 0, 1, 3, not 2
      expect(await blob.holds(0, 64 * KiB)).toBe(true);
      await blob.prefetch(64 * KiB, data.length); // to the end (clipped)
      expect(await blob.holds(0, data.length)).toBe(true);
      expect(blob.isComplete()).toBe(true);
      const s = blob.stats();
      expect(s.backgroundBytes).toBe(data.length - 16 * KiB);
      expect(s.backgroundInflight).toBe(0);
      expect(s.reads).toBe(1); // prefetch is not a read
      const fetched = src.bytes;
      const all = Buffer.alloc(data.length);
      expect(await blob.read(all, 0)).toBe(data.length);
      expect(all.equals(data)).toBe(true);
      expect(src.bytes).toBe(fetched);
      expect(blob.foregroundInflight()).toBe(0);
    } finally {
      await blob.close();
      await cache.close();
    }
  });

  it('persists across reopen: a new cache over the directory holds what was prefetched', async () => {
    const data = patternBytes(100 * KiB, 8);
    let cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 16 * KiB });
    let blob = cache.open(key, new MemoryFile(data));
    await blob.prefetch(0, 48 * KiB);
    await blob.close();
    await cache.close();
    cache = await BlockCache.open(dir, { diskFloor: 0, refillSize: 16 * KiB });
    const src = new CountingSource(new MemoryFile(data));
    blob = cache.open(key, src);
    try {
      expect(await blob.holds(0, 48 * KiB)).toBe(true);
      expect(await blob.holds(48 * KiB, 16 * KiB)).toBe(false);
      await blob.prefetch(0, data.length);
      expect(src.bytes).toBe(data.length - 48 * KiB);
    } finally {
      await blob.close();
      await cache.close();
    }
  });
});
