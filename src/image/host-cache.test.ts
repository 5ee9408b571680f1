import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimHostCache, openOwnedCache } from './host-cache.js';

describe('host cache claims', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-host-cache-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('one holder at a time; others learn who holds it; closing frees it', async () => {
    const cacheDir = join(dir, 'a');
    const first = await claimHostCache(cacheDir, 'the dadi daemon');
    if ('heldBy' in first) throw new Error('the first claim must succeed');
    const second = await claimHostCache(cacheDir, 'dadi cat');
    expect(second).toEqual({ heldBy: { pid: process.pid, role: 'the dadi daemon' } });
    await expect(openOwnedCache(cacheDir, 'dadi cache')).rejects.toThrow(
      `block cache ${cacheDir} belongs to the dadi daemon (pid ${process.pid}): stop it first`,
    );
    const cache = await first.open();
    expect(await first.open()).toBe(cache);
    await first.close();
    const owned = await openOwnedCache(cacheDir, 'dadi cache');
    expect(owned.cache.dir).toBe(cacheDir);
    await owned.close();
    // The claim leaves nothing in the directory: the kernel holds it, not a file.
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('names a directory by its real path: another spelling is the same claim', async () => {
    const cacheDir = join(dir, 'b');
    const first = await claimHostCache(cacheDir, 'the dadi daemon');
    if ('heldBy' in first) throw new Error('the first claim must succeed');
    try {
      expect('heldBy' in (await claimHostCache(join(dir, 'b', '..', 'b'), 'dadi cat'))).toBe(true);
    } finally {
      await first.close();
    }
  });
});
