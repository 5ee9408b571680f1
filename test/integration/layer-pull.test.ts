// Issue #11 item 4 with a real registry: a layer blob pulled in the background lands wholly in the
// block cache and verifies; a registry serving corrupted bytes fails verification with a clear
// message and the blob is not left complete; an interrupted pull resumes fetching only what is
// missing (a fresh cache over the same folder, as after a daemon restart); and, through the CLI,
// an image mounted once with the pull on runs afterwards with its registry stopped.

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockCache } from '../../src/cache/index.js';
import { LayerPull, type LayerPullStatus } from '../../src/prefetch/layer-pull.js';
import { DEFAULT_LAYER_PULL, type LayerPullConfig } from '../../src/prefetch/layer-pull-plan.js';
import { RegistryClient, RemoteBlob } from '../../src/registry/index.js';
import { runDadi } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';
import { testRandom } from '../seed.js';
import { startFaultProxy } from './fault-proxy.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { leftovers, pushRootfsImage, shutDownAndScrub } from './runtime-helpers.js';

const HAVE = haveRegistry('background layer pull');
const KiB = 1024;

const config = (o: Partial<LayerPullConfig> = {}): LayerPullConfig => ({
  ...DEFAULT_LAYER_PULL,
  delay: 0,
  delayExtra: 0,
  chunkSize: 64 * KiB,
  ...o,
});

describe.skipIf(!HAVE)('background whole-layer pull against a registry', () => {
  let tmp: string;
  let reg: TestRegistry;
  let blob: Buffer;
  let digest: string;
  const repository = 'dadi/pull';

  beforeAll(async () => {
    tmp = await mkdtemp('/var/tmp/dadi-layer-pull-');
    reg = await startRegistry({ auth: 'none' });
    const r = testRandom(11);
    blob = Buffer.from(Uint8Array.from({ length: 3 * 1024 * KiB + 1234 }, () => Math.floor(r() * 256)));
    const client = new RegistryClient();
    try {
      digest = (await client.pushBlob({ registry: reg.host, repository }, blob)).digest;
    } finally {
      await client.close();
    }
    expect(digest).toBe(`sha256:${createHash('sha256').update(blob).digest('hex')}`);
  });

  afterAll(async () => {
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Open the blob through `host` (the registry or a proxy) under a cache in `cacheDir`. */
  async function openCached(host: string, cacheDir: string) {
    const client = new RegistryClient();
    const cache = await BlockCache.open(cacheDir, { diskFloor: 0 });
    const remote = await RemoteBlob.open(client, { registry: host, repository }, digest, { size: blob.length });
    const cached = cache.open(digest, remote);
    return {
      remote,
      cached,
      async close() {
        await cached.close();
        await cache.close();
        await client.close();
      },
    };
  }

  it('pulls a blob wholly into the cache and verifies it; a second pull fetches nothing', async () => {
    const dir = join(tmp, 'cache-ok');
    const b = await openCached(reg.host, dir);
    try {
      const logs: string[] = [];
      const pull = new LayerPull([{ name: 'layer', digest, blob: b.cached }], config({ concurrency: 2 }), {
        log: (m) => logs.push(m),
      });
      const [s] = await pull.done;
      expect(s, logs.join('\n')).toMatchObject({ state: 'verified', chunksSkipped: 0, passes: 1 });
      expect(b.cached.isComplete()).toBe(true);
      expect(b.remote.stats.bytesFetched).toBe(blob.length);
      expect(b.cached.stats().backgroundBytes).toBe(blob.length);
      const all = Buffer.alloc(blob.length);
      await b.cached.read(all, 0);
      expect(all.equals(blob)).toBe(true);
      expect(b.remote.stats.bytesFetched).toBe(blob.length);
      const again = await new LayerPull([{ name: 'layer', digest, blob: b.cached }], config()).done;
      expect(again[0]).toMatchObject({ state: 'verified', chunksFetched: 0 });
      expect(b.remote.stats.bytesFetched).toBe(blob.length);
    } finally {
      await b.close();
    }
  });

  it('corrupted registry bytes fail verification with a clear message; the blob is not left complete', async () => {
    // Corrupt every range read that starts past 1 MiB.
    const proxy = await startFaultProxy({
      target: reg.url,
      faults: { corrupt: 1 },
      eligible: (req) =>
        /^bytes=(\d+)-/.exec(String(req.headers.range ?? ''))?.[1] !== undefined &&
        Number(/^bytes=(\d+)-/.exec(String(req.headers.range))![1]) >= 1024 * KiB,
    });
    const b = await openCached(proxy.host, join(tmp, 'cache-bad'));
    try {
      const logs: string[] = [];
      const [s] = await new LayerPull(
        [{ name: `${proxy.host}/${repository}@${digest}`, digest, blob: b.cached }],
        config({ tries: 2 }),
        {
          log: (m) => logs.push(m),
        },
      ).done;
      expect(s!.state).toBe('failed');
      expect(s!.passes).toBe(2);
      expect(s!.error).toContain(`${proxy.host}/${repository}@${digest}: the pulled blob hashes to sha256:`);
      expect(s!.error).toContain('not its digest; its cached bytes were dropped');
      expect(logs.filter((l) => /pass [12] of 2 failed: .*hashes to/.test(l))).toHaveLength(2);
      expect(b.cached.isComplete()).toBe(false);
      expect(proxy.counts.corrupt).toBeGreaterThan(0);
    } finally {
      await b.close();
      await proxy.stop();
    }
  });

  it('resumes after an interruption: a new cache over the same folder fetches only the missing chunks', async () => {
    const dir = join(tmp, 'cache-resume');
    const proxy = await startFaultProxy({ target: reg.url });
    try {
      const first = await openCached(proxy.host, dir);
      let status: LayerPullStatus[];
      try {
        const pull = new LayerPull([{ name: 'layer', digest, blob: first.cached }], config({ concurrency: 1 }));
        for (let i = 0; i < 2000 && pull.status[0]!.chunksFetched < 12; i++) await new Promise((r) => setTimeout(r, 2));
        status = await pull.stop();
      } finally {
        await first.close();
      }
      expect(status[0]!.state).toBe('stopped');
      const pulledFirst = status[0]!.bytesFetched;
      expect(pulledFirst).toBeGreaterThanOrEqual(12 * 64 * KiB);
      expect(pulledFirst).toBeLessThan(blob.length);

      const before = proxy.bodyBytes;
      const second = await openCached(proxy.host, dir);
      try {
        await second.cached.holds(0, 1); // loads its page map
        expect(second.cached.cachedBytes()).toBe(pulledFirst);
        const [s] = await new LayerPull([{ name: 'layer', digest, blob: second.cached }], config()).done;
        expect(s).toMatchObject({ state: 'verified', chunksSkipped: pulledFirst / (64 * KiB) });
        expect(s!.bytesFetched).toBe(blob.length - pulledFirst);
        expect(second.remote.stats.bytesFetched).toBe(blob.length - pulledFirst);
        expect(proxy.bodyBytes - before).toBe(blob.length - pulledFirst);
      } finally {
        await second.close();
      }
    } finally {
      await proxy.stop();
    }
  });
});

const HAVE_RUN =
  HAVE && requireOrSkip('a run with the registry stopped after a background pull', missing({ root: true }));

describe.skipIf(!HAVE_RUN)('an image pulled in the background runs with its registry stopped', () => {
  let root: string;
  let reg: TestRegistry | undefined;
  let state: string;
  let cacheDir: string;
  let ref: string;
  const env = () => ({
    DADI_STATE: state,
    DADI_CACHE_DIR: cacheDir,
    DADI_PULL: 'on',
    DADI_PULL_DELAY: '0',
    DADI_PULL_DELAY_EXTRA: '0',
  });
  const dadi = (args: string[]) => runDadi(args, { env: env() });

  beforeAll(async () => {
    root = await mkdtemp('/var/tmp/dadi-pull-run-');
    state = join(root, 'state');
    cacheDir = join(root, 'cache');
    reg = await startRegistry({ auth: 'none' });
    ref = await pushRootfsImage(root, reg.host, 'dadi/pulled', { Cmd: ['/bin/sh'] });
  });

  afterAll(async () => {
    try {
      await shutDownAndScrub(state, []);
      expect(await leftovers(state, [])).toEqual([]);
    } finally {
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  it('mount → the pull verifies every layer → registry stopped → dadi run succeeds from the cache', async () => {
    const mnt = join(root, 'mnt');
    await mkdir(mnt);
    const m = await dadi(['mount', ref, mnt]);
    expect(m.code, m.stderr).toBe(0);
    let layers: Array<{ pull?: { state: string; bytesFetched: number } }> = [];
    for (let i = 0; i < 600; i++) {
      const ps = await dadi(['ps', '--json']);
      expect(ps.code, ps.stderr).toBe(0);
      const devices = (JSON.parse(ps.stdout) as { devices: Array<{ target: string; layers: typeof layers }> }).devices;
      layers = devices.find((d) => d.target === mnt)!.layers;
      if (layers.every((l) => l.pull && l.pull.state !== 'waiting' && l.pull.state !== 'pulling')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(layers.map((l) => l.pull?.state)).toEqual(['verified']);
    expect((await dadi(['umount', mnt])).code).toBe(0);

    await reg!.stop();
    reg = undefined;
    const r = await dadi([
      'run',
      '--rm',
      ref,
      '--',
      '/bin/sh',
      '-c',
      'cat /etc/os-release >/dev/null && echo ran offline',
    ]);
    expect(r.stdout, r.stderr).toContain('ran offline');
    expect(r.code).toBe(0);
  });
});
