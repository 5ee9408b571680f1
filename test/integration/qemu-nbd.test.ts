// Issue #5 acceptance item 4, the VM path: a DADI image in a real registry, served lazily by
// `dadi serve-nbd` (a child process), read by QEMU's own NBD client.
//  1. `qemu-img compare` of the export against `dadi image export`'s flattened disk (and the mkfs
//     image it was made from): identical.
//  2. A Debian kernel (linux-image-amd64 from /boot) boots under TCG (never /dev/kvm) with its root
//     disk on the export and runs an init script from the image that prints a marker; the registry
//     serves only a fraction of the image (bytes reported).
//  3. `serve-nbd --rw`: qemu-io writes through the export and reads back; the image is unchanged.
// The root filesystem is built without debootstrap: the host's dash + its libraries + an init script
// (test/vm-boot.ts). Every process is stopped by PID, in afterAll too.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WritableLayer } from '../../src/format/lsmt/index.js';
import { importRawImage } from '../../src/image/import-raw.js';
import { openLayerOutput } from '../../src/image/layer-output.js';
import { run, runDadi } from '../cli.js';
import { mkfsFromDir } from '../ext4-tools.js';
import { missing, requireOrSkip } from '../require.js';
import {
  bootQemu,
  buildInitRootfs,
  findKernel,
  killVmChildren,
  parseFetchStats,
  type ServeNbd,
  startServeNbd,
} from '../vm-boot.js';
import { pushImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const MiB = 1 << 20;
const DISK_SIZE = 256 * MiB;

const VM_TOOLS = ['qemu-system-x86_64', 'qemu-img', 'qemu-io'];
const kernel = findKernel();
const HAVE =
  haveRegistry('QEMU tests') &&
  requireOrSkip(
    'QEMU tests',
    missing({ tools: VM_TOOLS, hint: 'apt-get install qemu-system-x86 qemu-utils' }) ??
      (kernel ? undefined : 'no /boot/vmlinuz-* with a matching initrd.img (apt-get install linux-image-amd64)'),
  );

const mib = (n: number) => `${(n / MiB).toFixed(2)} MiB`;

describe.skipIf(!HAVE)('QEMU over dadi serve-nbd from a registry', () => {
  let tmp: string;
  let reg: TestRegistry;
  let ref: string;
  let rawImg: string;
  let blobSize: number;
  const marker = `DADI-VM-MARKER-${randomBytes(6).toString('hex')}`;
  const release = `dadi-release-${randomBytes(6).toString('hex')}`;
  const servers = new Set<ServeNbd>();

  const serve = async (args: string[]) => {
    const s = await startServeNbd([ref, ...args]);
    servers.add(s);
    return s;
  };
  const stop = async (s: ServeNbd) => {
    const r = await s.stop();
    servers.delete(s);
    return r;
  };

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'dadi-qemu-'));
    reg = await startRegistry({ auth: 'none' });

    // Root filesystem: dash + libs + init, plus 24 MiB of data the boot never reads (so the image
    // is big enough for "only a fraction was fetched" to mean something).
    const rootDir = join(tmp, 'rootfs');
    await buildInitRootfs(rootDir, { marker, release });
    await mkdir(join(rootDir, 'data'), { recursive: true });
    for (let i = 0; i < 12; i++) await writeFile(join(rootDir, 'data', `blob${i}.bin`), randomBytes(2 * MiB));
    rawImg = join(tmp, 'disk.img');
    await mkfsFromDir(rootDir, rawImg, `${DISK_SIZE / MiB}M`);

    // A DADI layer (commit -z -t): LZ4 ZFile in a tar.
    const w = await WritableLayer.create(join(tmp, 'rw.data'), join(tmp, 'rw.index'), { virtualSize: DISK_SIZE });
    await importRawImage(rawImg, w);
    const layerPath = join(tmp, 'layer.tar');
    await w.commit(await openLayerOutput(layerPath, { tar: true, zfile: { algorithm: 'lz4', blockSize: 4096 } }));
    await w.close();
    const blob = await readFile(layerPath);
    blobSize = blob.length;

    // Blob, config, manifest (Docker schema2 with the overlaybd annotations).
    ref = (await pushImage(reg.host, 'dadi/vm', 'v1', [layerPath], { Cmd: ['/bin/sh'] })).ref;
  });

  afterAll(async () => {
    killVmChildren();
    for (const s of servers) await s.stop();
    servers.clear();
    await reg?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('qemu-img compare: the NBD export is identical to the exported disk', async () => {
    const exported = join(tmp, 'exported.img');
    const ex = await runDadi(['image', 'export', '--cache-dir', join(tmp, 'cache-export'), exported, ref]);
    expect(ex.code, ex.stderr).toBe(0);
    expect((await stat(exported)).size).toBe(DISK_SIZE);

    const sock = join(tmp, 'compare.sock');
    const srv = await serve(['--socket', sock, '--cache-dir', join(tmp, 'cache-compare')]);
    try {
      const t0 = Date.now();
      const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd:unix:${sock}`, exported]);
      const ms = Date.now() - t0;
      expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
      expect(cmp.stdout).toContain('Images are identical');
      // …and against the mkfs image the layer was made from (warm cache now).
      const cmp2 = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd:unix:${sock}`, rawImg]);
      expect(cmp2.code, cmp2.stdout + cmp2.stderr).toBe(0);
      expect(cmp2.stdout).toContain('Images are identical');
      console.log(`qemu-img compare over NBD (cold cache, ${mib(DISK_SIZE)} disk, ${mib(blobSize)} blob): ${ms} ms`);
    } finally {
      const { code, stderr } = await stop(srv);
      expect(code, stderr).toBe(0);
    }
  });

  it('a Debian kernel boots under TCG from the lazily served image and runs its init', async () => {
    if (!kernel) throw new Error('unreachable: no kernel');
    const sock = join(tmp, 'boot.sock');
    const srv = await serve(['--socket', sock, '--cache-dir', join(tmp, 'cache-boot')]);
    let stats: { bytes: number; requests: number } | undefined;
    let boot: Awaited<ReturnType<typeof bootQemu>> | undefined;
    try {
      boot = await bootQemu({ kernel, socket: sock, marker, timeoutMs: 120_000 });
    } finally {
      const { code, stderr } = await stop(srv);
      expect(code, stderr).toBe(0);
      stats = parseFetchStats(stderr);
    }
    const tail = boot.console.split('\n').slice(-40).join('\n');
    expect(boot.sawMarker, `no marker on the console; last lines:\n${tail}`).toBe(true);
    // The init read /etc/dadi-release from the image.
    expect(boot.markerLine).toContain(release);
    expect(stats, 'serve-nbd printed no fetch stats').toBeDefined();
    if (!stats) return;
    expect(stats.bytes).toBeGreaterThan(0);
    // Lazy: the boot touches the superblock, inode tables, dash and libc, not the 24 MiB of data.
    expect(stats.bytes).toBeLessThan(blobSize / 2);
    console.log(
      `QEMU TCG boot (${kernel.version}): marker after ${(boot.msToMarker / 1000).toFixed(1)} s, ` +
        `QEMU ${boot.exitedByItself ? 'powered off' : 'killed'} after ${(boot.msTotal / 1000).toFixed(1)} s; ` +
        `registry served ${mib(stats.bytes)} in ${stats.requests} requests ` +
        `(disk ${mib(DISK_SIZE)}, blob ${mib(blobSize)}, ${((100 * stats.bytes) / blobSize).toFixed(1)}% of the blob)`,
    );
  }, 180_000);

  it('serve-nbd --rw: qemu-io writes through the export and reads back; the image is unchanged', async () => {
    const sock = join(tmp, 'rw.sock');
    const upper = join(tmp, 'upper');
    await mkdir(upper);
    const srv = await serve(['--socket', sock, '--rw', '--upper', upper, '--cache-dir', join(tmp, 'cache-compare')]);
    const nbd = `nbd:unix:${sock}`;
    try {
      // Write in one client, read back in another (the writable layer lives in the server).
      const w = await run('qemu-io', [
        '-f',
        'raw',
        nbd,
        '-c',
        'write -P 0xa5 64M 1M',
        '-c',
        'write -z 1M 64k',
        '-c',
        'flush',
      ]);
      expect(w.code, w.stdout + w.stderr).toBe(0);
      expect(w.stdout).not.toMatch(/error|failed/i);
      const r = await run('qemu-io', ['-f', 'raw', '-r', nbd, '-c', 'read -P 0xa5 64M 1M', '-c', 'read -P 0 1M 64k']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).not.toMatch(/Pattern verification failed|error/i);
      // Elsewhere the disk is still the image.
      const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', nbd, rawImg]);
      expect(cmp.code).toBe(1); // differs (only where we wrote)
      expect(cmp.stdout).toMatch(/Content mismatch at offset/);
    } finally {
      const { code, stderr } = await stop(srv);
      expect(code, stderr).toBe(0);
    }
    // The writable layer was kept in --upper; the image itself is unchanged.
    expect((await stat(join(upper, 'writable_data'))).size).toBeGreaterThan(0);
    const ro = join(tmp, 'ro.sock');
    const srv2 = await serve(['--socket', ro, '--cache-dir', join(tmp, 'cache-compare')]);
    try {
      const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', `nbd:unix:${ro}`, rawImg]);
      expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
    } finally {
      await stop(srv2);
    }
  });
});
