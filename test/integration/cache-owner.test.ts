// One owner per block cache directory (issue #10): while the daemon owns the cache and fills it
// through a mounted image, `dadi cat` and `dadi image export` of the same image on the same cache
// directory hand their reads to the daemon, which reads through (and fills) its cache; the
// daemon's usage count then equals what its files occupy on disk. A daemon killed with SIGKILL
// does not leave the cache claimed.

import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patternBytes } from '../../src/cache/testing.js';
import { cacheLockKey } from '../../src/image/host-cache.js';
import { DaemonClient } from '../../src/runtime/index.js';
import { ProcessLock } from '../../src/util/process-lock.js';
import { runDadi } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';
import { pushImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import {
  buildRootfs,
  emergencyCleanup,
  imageToLayer,
  makeExt4,
  pidAlive,
  shutDownAndScrub,
} from './runtime-helpers.js';

const HAVE = haveRegistry('block cache ownership') && requireOrSkip('block cache ownership', missing({ root: true }));
const MiB = 1 << 20;

/** `--stats` output: requests, bytes fetched from the registry, bytes from the cache. */
function fetchedOf(stderr: string): { requests: number; bytesFetched: number; hitBytes: number } {
  const m = /fetched .* \((\d+) bytes\) in (\d+) requests; (.+) from the cache/.exec(stderr);
  if (!m) throw new Error(`no --stats line in: ${stderr}`);
  const hit = m[3]!;
  return {
    bytesFetched: Number(m[1]),
    requests: Number(m[2]),
    hitBytes: hit === '0 B' ? 0 : Number.parseFloat(hit) || 1,
  };
}

/** What the cache's blob files occupy (the lock file is not cache content). */
async function cacheFilesUsage(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir)) {
    if (name.endsWith('.data') || name.endsWith('.map')) n += (await stat(join(dir, name))).blocks * 512;
  }
  return n;
}

describe.skipIf(!HAVE)('one owner per block cache directory', () => {
  let root: string;
  let reg: TestRegistry;
  let ref: string;
  let layerRef: string;
  let state: string;
  let cacheDir: string;
  let daemonPid = 0;
  // Text (hex of seeded bytes), so that `dadi cat` output compares as a string.
  const big = patternBytes(5 * MiB, 7).toString('hex');
  const other = patternBytes(3 * MiB, 11).toString('hex');
  const dadi = (args: string[]) => runDadi(args, { env: { DADI_STATE: state, DADI_CACHE_DIR: cacheDir } });

  beforeAll(async () => {
    // State deep in a private folder (FUSE mount points must never sit directly under /tmp).
    root = await mkdtemp('/var/tmp/dadi-cache-owner-');
    state = join(root, 'state');
    cacheDir = join(root, 'cache');
    reg = await startRegistry({ auth: 'none' });
    const rootfs = join(root, 'rootfs');
    await buildRootfs(rootfs);
    await writeFile(join(rootfs, 'data/big.bin'), big);
    await writeFile(join(rootfs, 'data/other.bin'), other);
    await makeExt4(rootfs, join(root, 'disk.img'));
    await imageToLayer(join(root, 'disk.img'), join(root, 'layer.tar'));
    const pushed = await pushImage(reg.host, 'dadi/owner', 'v1', [join(root, 'layer.tar')], { Cmd: ['/bin/true'] });
    ref = pushed.ref;
    layerRef = `${reg.host}/dadi/owner@${pushed.layers[0]!.digest}`;
  });

  afterAll(async () => {
    try {
      await shutDownAndScrub(state, [], daemonPid || undefined);
    } finally {
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  it('cat and image export go through the daemon that owns the cache; it counts its usage exactly', async () => {
    const mnt = join(root, 'mnt');
    await mkdir(mnt);
    const m = await dadi(['mount', ref, mnt]);
    expect(m.code, m.stderr).toBe(0);
    const client = await DaemonClient.connect({ stateDir: state, autoStart: false });
    daemonPid = (await client.ping()).pid;
    // The daemon claimed the cache when it started.
    expect(JSON.parse((await ProcessLock.holder(cacheLockKey(await realpath(cacheDir)))) ?? '{}').pid).toBe(daemonPid);
    try {
      // At the same time: the kernel reads big.bin through the daemon's mount, and `dadi cat`
      // reads other.bin of the same image; both fill the daemon's cache.
      const [viaMount, cat] = await Promise.all([
        readFile(join(mnt, 'data/big.bin')),
        dadi(['cat', '--stats', ref, '/data/other.bin']),
      ]);
      expect(viaMount.toString() === big).toBe(true);
      expect(cat.code, cat.stderr).toBe(0);
      expect(cat.stdout === other).toBe(true);
      expect(cat.stderr).not.toContain('belongs to');
      const first = fetchedOf(cat.stderr);
      expect(first.requests).toBeGreaterThan(0);
      const usageAfterCat = (await client.cache())!.usage;
      expect(usageAfterCat).toBeGreaterThan(other.length / 4); // other.bin's blocks (compressed) are in it

      // Again: now every block comes from the daemon's cache, with no registry request.
      const again = await dadi(['cat', '--stats', ref, '/data/other.bin']);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout === other).toBe(true);
      const second = fetchedOf(again.stderr);
      expect(second.requests).toBe(0);
      expect(second.bytesFetched).toBe(0);
      expect(second.hitBytes).toBeGreaterThan(0);
      expect((await client.cache())!.usage).toBe(usageAfterCat);

      // big.bin, read through the mount, is a cache hit for `cat` too.
      const bigCat = await dadi(['cat', '--stats', ref, '/data/big.bin']);
      expect(bigCat.code, bigCat.stderr).toBe(0);
      expect(bigCat.stdout === big).toBe(true);
      expect(fetchedOf(bigCat.stderr).hitBytes).toBeGreaterThan(0);

      // The daemon writes an export itself: the raw disk equals the ext4 image the layer was made of.
      const exported = join(root, 'export.img');
      const ex = await dadi(['image', 'export', '--stats', exported, ref]);
      expect(ex.code, ex.stderr).toBe(0);
      expect(ex.stderr).not.toContain('belongs to');
      expect(fetchedOf(ex.stderr).hitBytes).toBeGreaterThan(0);
      expect((await readFile(exported)).equals(await readFile(join(root, 'disk.img')))).toBe(true);
      // `layer export` of the registry blob too, all from the cache by now.
      const layerOut = join(root, 'layer-export.img');
      const lx = await dadi(['layer', 'export', '--stats', layerOut, layerRef]);
      expect(lx.code, lx.stderr).toBe(0);
      expect(fetchedOf(lx.stderr).requests).toBe(0);
      expect((await readFile(layerOut)).equals(await readFile(join(root, 'disk.img')))).toBe(true);
      // Its errors reach the user as a standalone command's would: named, without a stack.
      const missingFile = await dadi(['cat', ref, '/data/nope']);
      expect(missingFile.code).toBe(1);
      expect(missingFile.stderr).toMatch(new RegExp(`^dadi: ${ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*nope`));
      expect(missingFile.stderr).not.toMatch(/\n\s+at /);
      const badOut = join(root, 'no/such/folder/disk.img');
      const refused = await dadi(['image', 'export', badOut, ref]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`^dadi: .*${badOut}`));
    } finally {
      const u = await dadi(['umount', mnt]);
      expect(u.code, u.stderr).toBe(0);
    }
    const stats = await client.cache();
    expect(stats?.dir).toBe(cacheDir);
    expect(stats!.usage).toBeGreaterThan(0);
    expect(stats!.usage).toBe(await cacheFilesUsage(cacheDir));
    // `cache ls` asks the owner; `cache gc` (a second writer) is refused.
    const ls = await dadi(['cache', 'ls', '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout).usage).toBe(stats!.usage);
    expect(JSON.parse(ls.stdout).entries.length).toBeGreaterThan(0);
    const gc = await dadi(['cache', 'gc']);
    expect(gc.code).not.toBe(0);
    expect(gc.stderr).toContain(`block cache ${cacheDir} belongs to the dadi daemon (pid ${daemonPid}): stop it first`);
  });

  it('a killed daemon leaves no claim behind: the next reader owns the cache and hits what it holds', async () => {
    expect(daemonPid).toBeGreaterThan(0);
    process.kill(daemonPid, 'SIGKILL');
    for (let i = 0; i < 100 && pidAlive(daemonPid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(pidAlive(daemonPid)).toBe(false);
    // The kernel gave the daemon's claim up with the process.
    expect(await ProcessLock.isHeld(cacheLockKey(await realpath(cacheDir)))).toBe(false);
    await emergencyCleanup(state, []);

    const cat = await dadi(['cat', '--stats', ref, '/data/big.bin']);
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout === big).toBe(true);
    expect(cat.stderr).not.toContain('belongs to');
    // big.bin came through the daemon's cache: most of it is a hit now.
    const hit = /in \d+ requests; (.+) from the cache/.exec(cat.stderr);
    expect(hit, cat.stderr).not.toBeNull();
    expect(hit![1]).not.toBe('0 B');
    // The standalone reader gave its claim up when it ended.
    expect(await ProcessLock.isHeld(cacheLockKey(await realpath(cacheDir)))).toBe(false);
    const ls = await dadi(['cache', 'ls', '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout).usage).toBe(await cacheFilesUsage(cacheDir));
  });
});
