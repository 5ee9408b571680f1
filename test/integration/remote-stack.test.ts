// Issue #3 acceptance through the whole stack: a tar-wrapped ZFile layer pushed to the real
// registry opens remotely through the block cache and exports byte-equal to the local export, with
// fetched bytes reported; a manifest-level image exports with `dadi image export`; and reads through
// a fault-injecting proxy (including corrupted bytes, caught by ZFile CRCs + cache eviction) never
// return wrong bytes.

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFile } from '../../src/blockfile/local.js';
import { BlockCache } from '../../src/cache/index.js';
import { DadiError } from '../../src/errors.js';
import { WritableLayer } from '../../src/format/lsmt/index.js';
import { importRawImage } from '../../src/image/import-raw.js';
import { openLayerBlob } from '../../src/image/layer-blob.js';
import { openLayerOutput } from '../../src/image/layer-output.js';
import { RegistryClient } from '../../src/registry/index.js';
import { runDadi } from '../cli.js';
import { mkfsFromDir } from '../ext4-tools.js';
import { openLayerFile } from '../lsmt-helpers.js';
import { testRandom } from '../seed.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { pushImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const HAVE = haveRegistry('remote stack tests');
const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

describe.skipIf(!HAVE)('remote layers through the block cache', () => {
  let tmp: string;
  let reg: TestRegistry;
  let layerPath: string;
  let digest: string;
  let localImg: string;
  const repo = () => ({ registry: reg.host, repository: 'dadi/stack' });

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'dadi-remote-'));
    reg = await startRegistry({ auth: 'none' });
    // A real ext4 disk with ~6 MiB of files, as a DADI layer (commit -z -t).
    const root = join(tmp, 'rootfs');
    await mkdir(join(root, 'data'), { recursive: true });
    for (let i = 0; i < 24; i++) {
      const b = Buffer.alloc(256 << 10);
      for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j);
      await writeFile(join(root, 'data', `f${i}.bin`), i % 3 === 0 ? b.toString('base64') : b);
    }
    await writeFile(join(root, 'hello.txt'), 'hello remote\n');
    const raw = join(tmp, 'disk.img');
    await mkfsFromDir(root, raw, '64M');
    const w = await WritableLayer.create(join(tmp, 'rw.data'), join(tmp, 'rw.index'), { virtualSize: 64 << 20 });
    await importRawImage(raw, w);
    layerPath = join(tmp, 'layer.tar');
    await w.commit(await openLayerOutput(layerPath, { tar: true, zfile: { algorithm: 'lz4', blockSize: 4096 } }));
    await w.close();
    localImg = join(tmp, 'local.img');
    expect((await runDadi(['layer', 'export', localImg, layerPath])).code).toBe(0);

    const push = await runDadi(['blob', 'push', layerPath, `${reg.host}/dadi/stack`]);
    expect(push.code, push.stderr).toBe(0);
    digest = push.stdout.trim();
    expect(digest).toBe(`sha256:${await sha(layerPath)}`);
  });

  afterAll(async () => {
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('exports a pushed layer byte-equal to the local export; a warm cache fetches nothing', async () => {
    const cacheDir = join(tmp, 'cache1');
    const out = join(tmp, 'remote.img');
    const args = ['layer', 'export', '--json', '--cache-dir', cacheDir, out, `${reg.host}/dadi/stack@${digest}`];
    const cold = await runDadi(args);
    expect(cold.code, cold.stderr).toBe(0);
    expect(await sha(out)).toBe(await sha(localImg));
    const coldStats = JSON.parse(cold.stdout);
    const blobSize = (await LocalFile.open(layerPath).then(async (f) => [f.size, await f.close()]))[0] as number;
    // Reading the whole disk needs the whole blob once; refill alignment may add a little.
    expect(coldStats.fetched.bytesFetched).toBeGreaterThan(blobSize * 0.9);
    expect(coldStats.fetched.bytesFetched).toBeLessThan(blobSize * 1.25);

    const warm = await runDadi(args);
    expect(warm.code, warm.stderr).toBe(0);
    expect(JSON.parse(warm.stdout).fetched.bytesFetched).toBe(0);
    expect(await sha(out)).toBe(await sha(localImg));
  });

  it('a small read fetches a small multiple of what it needs', async () => {
    const client = new RegistryClient();
    const cache = await BlockCache.open(join(tmp, 'cache2'));
    const local = await openLayerFile(layerPath);
    try {
      const r = await openLayerBlob({ kind: 'registry', repo: repo(), digest }, { client, cache });
      const afterOpen = r.fetchStats().bytesFetched;
      const buf = Buffer.alloc(64 << 10);
      const want = Buffer.alloc(64 << 10);
      const offset = 8 << 20;
      await r.layer.read(buf, offset);
      await local.read(want, offset);
      expect(buf.equals(want)).toBe(true);
      const forRead = r.fetchStats().bytesFetched - afterOpen;
      // 64 KiB of disk ≈ ≤ 64 KiB compressed, filled in 256 KiB units: at most a couple of units.
      expect(forRead).toBeLessThanOrEqual(2 * 256 * 1024);
      await r.layer.close();
    } finally {
      await local.close();
      await cache.close();
      await client.close();
    }
  });

  it('concurrent reads of neighbouring ranges share range GETs and return the right bytes', async () => {
    const client = new RegistryClient();
    const cache = await BlockCache.open(join(tmp, 'cache-merge'), { readahead: 0 });
    const local = await openLayerFile(layerPath);
    try {
      const r = await openLayerBlob({ kind: 'registry', repo: repo(), digest }, { client, cache });
      // 32 neighbouring 4 KiB reads of file data at once (as the kernel hands FUSE a burst).
      const offs = Array.from({ length: 32 }, (_, i) => (8 << 20) + i * 4096);
      const got = offs.map(() => Buffer.alloc(4096));
      await Promise.all(offs.map((o, i) => r.layer.read(got[i]!, o)));
      for (const [i, o] of offs.entries()) {
        const want = Buffer.alloc(4096);
        await local.read(want, o);
        expect(got[i]!.equals(want)).toBe(true);
      }
      await cache.flush();
      const s = r.cached!.stats();
      expect(s.mergedFetches).toBeGreaterThan(0);
      // Every range GET is one fetch or several merged ones.
      expect(r.fetchStats().requests).toBe(s.fetches - s.mergedFetches);
      await r.layer.close();
    } finally {
      await local.close();
      await cache.close();
      await client.close();
    }
  });

  it('dadi image export and inspect work on an image manifest', async () => {
    await pushImage(reg.host, 'dadi/stack', 'v1', [layerPath], { Cmd: ['/bin/sh'] });
    const out = join(tmp, 'image.img');
    const r = await runDadi([
      'image',
      'export',
      '--stats',
      '--cache-dir',
      join(tmp, 'cache3'),
      out,
      `${reg.host}/dadi/stack:v1`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/fetched .* in \d+ requests/);
    expect(await sha(out)).toBe(await sha(localImg));
    const i = await runDadi(['inspect', '--json', `${reg.host}/dadi/stack:v1`]);
    expect(i.code, i.stderr).toBe(0);
    const info = JSON.parse(i.stdout);
    expect(info.layers).toHaveLength(1);
    expect(info.layers[0].overlaybd).toBe(true);
  });

  describe('through a fault-injecting proxy', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy({ target: reg.url, stallMs: 3000, seed: 7, faults: {} });
    });
    afterAll(async () => {
      await proxy?.stop();
    });

    it('random reads return the right bytes or a clear error, never wrong bytes', async () => {
      const client = new RegistryClient({ requestTimeoutMs: 300, maxAttempts: 10, backoffBaseMs: 5, backoffMaxMs: 50 });
      const cache = await BlockCache.open(join(tmp, 'cache-faults'), { refillSize: 64 << 10 });
      const local = await openLayerFile(layerPath);
      try {
        const r = await openLayerBlob(
          { kind: 'registry', repo: { registry: proxy.host, repository: 'dadi/stack' }, digest },
          { client, cache },
        );
        proxy.setFaults({
          reset: 0.03,
          http500: 0.03,
          http503: 0.02,
          http429: 0.02,
          truncate: 0.03,
          short: 0.03,
          stall: 0.01,
          corrupt: 0.08,
          'ignore-range': 0.02,
        });
        let ok = 0;
        let wrong = 0;
        let failed = 0;
        const size = r.layer.size;
        const random = testRandom();
        for (let i = 0; i < 400; i++) {
          // Reads where the disk has data (the first 16 MiB hold the files), sector-aligned.
          const len = 512 * (1 + Math.floor(random() * 256));
          const off = 512 * Math.floor((random() * Math.min(size, 16 << 20) - len) / 512);
          const got = Buffer.alloc(len);
          const want = Buffer.alloc(len);
          await local.read(want, Math.max(0, off));
          try {
            await r.layer.read(got, Math.max(0, off));
            if (got.equals(want)) ok++;
            else wrong++;
          } catch (e) {
            expect(e).toBeInstanceOf(DadiError);
            failed++;
          }
          // Cold again now and then, so faults keep hitting fetches.
          if (i % 50 === 49) await cache.clear();
        }
        // Bursts of neighbouring reads at once: their fetches share range GETs, which the faults hit.
        for (let i = 0; i < 12; i++) {
          const base = 4096 * Math.floor((random() * (16 << 20)) / 4096);
          const offs = Array.from({ length: 16 }, (_, k) => base + k * 4096);
          const want = offs.map(() => Buffer.alloc(4096));
          for (const [k, o] of offs.entries()) await local.read(want[k]!, o);
          const got = offs.map(() => Buffer.alloc(4096));
          const res = await Promise.allSettled(offs.map((o, k) => r.layer.read(got[k]!, o)));
          for (const [k, x] of res.entries()) {
            if (x.status === 'rejected') {
              expect(x.reason).toBeInstanceOf(DadiError);
              failed++;
            } else if (got[k]!.equals(want[k]!)) ok++;
            else wrong++;
          }
          await cache.clear();
        }
        expect(r.cached!.stats().mergedFetches).toBeGreaterThan(0);
        expect(wrong).toBe(0);
        expect(ok).toBeGreaterThan(350);
        expect(proxy.counts.corrupt ?? 0).toBeGreaterThan(0);
        console.log(`fault reads: ${ok} ok, ${failed} clean failures, 0 wrong; faults ${JSON.stringify(proxy.counts)}`);
        await r.layer.close();
      } finally {
        await local.close();
        await cache.close();
        await client.close();
      }
    });
  });
});
