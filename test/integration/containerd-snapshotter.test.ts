// Issue #12: containerd 1.6 (Debian's, started privately) with `dadi snapshotter` as its proxy
// snapshotter. Ordinary images unpack into overlayfs snapshots; DADI images pulled with
// `dadi pull --containerd-address` start lazily (the registry serves a fraction of the image);
// a container's changes commit through containerd; a snapshotter restart leaves a running
// container working; afterwards nothing of ours is mounted or running.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMounts } from '../../src/export/system.js';
import { decodeTrace } from '../../src/prefetch/trace-format.js';
import { DaemonClient } from '../../src/runtime/index.js';
import { ContainerdClient } from '../../src/snapshotter/containerd-client.js';
import { Label } from '../../src/snapshotter/labels.js';
import { run, runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { requireOrSkip, slowTestsOff } from '../require.js';
import {
  type Containerd,
  haveContainerd,
  type SnapshotterProcess,
  startContainerd,
  startSnapshotter,
  tearDownContainerd,
} from './containerd-harness.js';
import { debianLayout, haveDebianTools } from './debian-image.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { pushImage, pushLayoutImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { buildRootfs, imageToLayer, makeExt4 } from './runtime-helpers.js';

const WHAT = 'containerd snapshotter';
const HAVE = haveRegistry(WHAT) && haveContainerd(WHAT) && haveFixtures(WHAT);
const SLOW = requireOrSkip('containerd Debian run', slowTestsOff()) && haveDebianTools('containerd Debian run');

describe.skipIf(!HAVE)('dadi snapshotter under containerd 1.6', () => {
  let root: string;
  let reg: TestRegistry;
  /** A pass-through proxy in front of the registry that counts the bytes it serves. */
  let proxy: FaultProxy;
  /** A small DADI image with a shell (host binaries), pulled through the proxy. */
  let small: { ref: string; bytes: number };
  let ctrd: Containerd;
  let snap: SnapshotterProcess | undefined;
  let env: NodeJS.ProcessEnv;
  const snapRoot = () => join(root, 'snapshotter');
  const snapSocket = () => join(root, 'dadi-snapshotter.sock');
  const startSnap = async (args: string[] = []) => {
    snap = await startSnapshotter(snapSocket(), snapRoot(), env, args);
  };
  const ctr = (args: string[]) => ctrd.ctr(args);
  const ok = async (args: string[]) => {
    const r = await ctr(args);
    expect(r.code, `ctr ${args.join(' ')}: ${r.stderr}\n${snap?.logs() ?? ''}`).toBe(0);
    return r;
  };

  beforeAll(async () => {
    // Mount points live deep in a private folder, never directly under /tmp.
    root = await mkdtemp('/var/tmp/dadi-containerd-');
    env = { DADI_STATE: join(root, 'dadi-state'), DADI_CACHE_DIR: join(root, 'cache') };
    reg = await startRegistry({ auth: 'none' });
    await pushLayoutImage(fixture('oci/hello-world'), 'amd64', reg.host, 'library/hello-world', 'plain');
    proxy = await startFaultProxy({ target: reg.url });
    const rootfs = join(root, 'rootfs');
    await buildRootfs(rootfs);
    // Data no container here reads (incompressible, so the blob holds it): a lazy start leaves it in the registry.
    await writeFile(join(rootfs, 'data/unread.bin'), randomBytes(16 << 20));
    await makeExt4(rootfs, join(root, 'disk.img'));
    await imageToLayer(join(root, 'disk.img'), join(root, 'layer.tar'));
    const img = await pushImage(reg.host, 'dadi/small', 'v1', [join(root, 'layer.tar')], {
      Cmd: ['/bin/sh', '-c', 'echo default cmd'],
      Env: ['PATH=/usr/bin:/bin'],
    });
    small = { ref: `${proxy.host}/dadi/small:v1`, bytes: img.layers.reduce((n, l) => n + l.size, 0) };
    await startSnap();
    ctrd = await startContainerd(join(root, 'containerd'), snapSocket());
  }, 120_000);

  afterAll(() => tearDownContainerd({ root, stateDir: env?.DADI_STATE, snap, ctrd }, [proxy, reg]));

  it('pulls and runs an ordinary image through overlayfs snapshots', async () => {
    const ref = `${reg.host}/library/hello-world:plain`;
    await ok(['images', 'pull', '--plain-http', '--snapshotter', 'dadi', ref]);
    const r = await ok(['run', '--rm', '--snapshotter', 'dadi', ref, 'hello-plain']);
    expect(r.stdout).toContain('Hello from Docker!');
    const snaps = await ok(['snapshots', '--snapshotter', 'dadi', 'ls']);
    expect(snaps.stdout).toMatch(/sha256:[0-9a-f]{64}\s+Committed/);
    // dadi pull takes DADI images only, and says so before writing anything into containerd.
    const refused = await runDadi(['pull', '--containerd-address', ctrd.socket, '-n', 'dadi-refused', ref]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^dadi: .*hello-world:plain: layer 0 \(sha256:[0-9a-f]{64}\) is not a DADI layer/);
    // The same refusal when the snapshotter performs the pull: its message reaches the CLI as it is.
    const refusedThere = await runDadi([
      'pull',
      '--containerd-address',
      ctrd.socket,
      '-n',
      'dadi-refused',
      '--snapshotter-address',
      snapSocket(),
      ref,
    ]);
    expect(refusedThere.code).toBe(1);
    expect(refusedThere.stderr).toMatch(
      /^dadi: .*hello-world:plain: layer 0 \(sha256:[0-9a-f]{64}\) is not a DADI layer/,
    );
    expect((await ctrd.ctr(['images', 'ls', '-q'], 'dadi-refused')).stdout.trim()).toBe('');
  }, 120_000);

  /**
   * `dadi pull`, performed by the running snapshotter (named by --snapshotter-address), or in the
   * CLI's own process when no snapshotter answers at the default address (none does here).
   */
  const dadiPull = async (ref: string, by: 'snapshotter' | 'in-process' = 'snapshotter', args: string[] = []) => {
    const at = by === 'snapshotter' ? ['--snapshotter-address', snapSocket()] : [];
    const r = await runDadi(['pull', '--containerd-address', ctrd.socket, '-n', 'dadi-test', ...at, ...args, ref]);
    expect(r.code, `${r.stderr}\n${snap?.logs() ?? ''}`).toBe(0);
    return r;
  };

  it('a DADI image a snapshotter other than dadi will not take is refused, and no image record is left', async () => {
    // The image record is created beside the config's fetch: the pull removes it when a layer fails.
    const r = await runDadi([
      'pull',
      '--containerd-address',
      ctrd.socket,
      '-n',
      'dadi-other',
      '--snapshotter',
      'overlayfs',
      small.ref,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/snapshotter overlayfs did not take layer sha256:[0-9a-f]{64} as a remote layer/);
    expect((await ctrd.ctr(['images', 'ls', '-q'], 'dadi-other')).stdout.trim()).toBe('');
  }, 60_000);

  it('pulls a converted hello-world lazily and runs it', async () => {
    const conv = await runDadi(
      ['convert', '-q', '--json', `oci:${fixture('oci/hello-world')}:amd64`, `${reg.host}/library/hello-world:dadi`],
      { env },
    );
    expect(conv.code, conv.stderr).toBe(0);
    const ref = `${proxy.host}/library/hello-world:dadi`;
    // In the CLI's process: `dadi pull` keeps working where it finds no snapshotter to ask.
    await dadiPull(ref, 'in-process');
    const r = await ok(['run', '--rm', '--snapshotter', 'dadi', ref, 'hello-dadi']);
    expect(r.stdout).toContain('Hello from Docker!');
  }, 180_000);

  it('pulls without downloading layers; a run fetches a fraction of the image', async () => {
    const before = proxy.bodyBytes;
    const r0 = await dadiPull(small.ref, 'snapshotter', ['--json', '--timings']);
    // The pull itself fetches the manifest and config only; the snapshotter then mounts the image
    // ahead of its containers, reading the layer's index and the file system's metadata.
    const pulled0 = JSON.parse(r0.stdout) as { registryBytes: number; steps: { step: string }[] };
    // The snapshotter did the work: its steps come back after the CLI's own.
    expect(pulled0.steps.map((s) => s.step)).toEqual(
      expect.arrayContaining(['node + CLI start', 'request to the snapshotter', 'resolve', 'layer snapshots']),
    );
    const own = pulled0.registryBytes;
    expect(own).toBeGreaterThan(0);
    expect(own).toBeLessThan(8192);
    const pulled = proxy.bodyBytes - before;
    expect(pulled).toBeGreaterThanOrEqual(own);
    // No layer is downloaded. What the mount ahead has fetched by the time the pull returns depends
    // on timing: its index and metadata, and, when the config came before the mount started, also
    // the image's launch files (the entrypoint's libraries: 1.67 MB of this 19.4 MB image in one CI run).
    expect(pulled).toBeLessThan(small.bytes / 8);
    // Before any container: the kernel reads the launch files in through the image's mount, once
    // fetched (containerd's user lookup files at least), so that the start finds them in its caches.
    const daemon = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false });
    const readThrough = async () =>
      (await daemon.ps()).find((d) => d.target.startsWith(`${snapRoot()}/`) && !d.rw)?.readThrough;
    let read = await readThrough();
    for (let i = 0; i < 200 && !(read && read.files >= 2); i++) {
      await new Promise((res) => setTimeout(res, 50));
      read = await readThrough();
    }
    expect(read?.files).toBeGreaterThanOrEqual(2);
    expect(read?.bytes).toBeGreaterThan(0);
    expect(read?.failed).toBe(0);
    // Not the command's: the pull knows the image, not what a container of it runs.
    expect(read?.paths.some((p) => p.endsWith('/sh'))).toBe(false);
    const running = ok([
      'run',
      '--rm',
      '--snapshotter',
      'dadi',
      small.ref,
      'small-run',
      'sh',
      '-c',
      'cat /etc/os-release; echo ran; sleep 2',
    ]);
    // Once containerd has the container, its command (sh) is read through the mount too.
    let done = false;
    void running.finally(() => (done = true)).catch(() => {});
    let program: string | undefined;
    for (let i = 0; i < 200 && !done && !program; i++) {
      program = (await readThrough())?.paths.find((p) => p.endsWith('/sh'));
      await new Promise((res) => setTimeout(res, 20));
    }
    const r = await running;
    expect(program).toMatch(/^\/(usr\/)?(local\/)?s?bin\/sh$/);
    expect(r.stdout).toContain('dadi test rootfs');
    expect(r.stdout).toContain('ran');
    const served = proxy.bodyBytes - before;
    console.log(
      `containerd lazy run: registry served ${served} of ${small.bytes} image bytes (${((100 * served) / small.bytes).toFixed(1)}%)`,
    );
    expect(served).toBeLessThan(small.bytes / 4);
  }, 180_000);

  it("commits a container's changes through containerd", async () => {
    // small.ref was pulled by the previous test; pulling again is a no-op.
    await dadiPull(small.ref);
    await ok([
      'run',
      '--snapshotter',
      'dadi',
      small.ref,
      'c-commit',
      'sh',
      '-c',
      'echo committed-content > /new-file; rm /data/doomed.txt',
    ]);
    // containerd's differ compares the container's mounts with its parent's: the layer it writes
    // holds the new file and a whiteout for the deleted one.
    const tar = await run('bash', [
      '-c',
      `set -o pipefail; ctr -a '${ctrd.socket}' -n dadi-test snapshots --snapshotter dadi diff c-commit | tar -tzf -`,
    ]);
    expect(tar.code, tar.stderr).toBe(0);
    expect(tar.stdout.split('\n')).toEqual(expect.arrayContaining(['new-file', 'data/.wh.doomed.txt']));

    // Commit and view through containerd's snapshots API, under a lease so that containerd's GC
    // (which collects snapshots nothing refers to) leaves them alone until the lease ends.
    const api = new ContainerdClient(ctrd.socket, 'dadi-test');
    const dir = join(root, 'view');
    await mkdir(dir);
    try {
      await api.beginLease('commit-test');
      const sn = { snapshotter: 'dadi' };
      await api.call('snapshots', 'Commit', { ...sn, name: 'c-commit-layer', key: 'c-commit' });
      const view = await api.call<{ mounts: Array<{ type: string; source: string; options: string[] }> }>(
        'snapshots',
        'View',
        { ...sn, key: 'c-commit-view', parent: 'c-commit-layer' },
      );
      const [mnt] = view.mounts;
      expect(mnt?.type).toBe('overlay');
      const m = await run('mount', ['-t', mnt!.type, mnt!.source, dir, '-o', mnt!.options.join(',')]);
      expect(m.code, m.stderr).toBe(0);
      try {
        expect(await readFile(join(dir, 'new-file'), 'utf8')).toBe('committed-content\n');
        expect(await readFile(join(dir, 'data/keep.txt'), 'utf8')).toBe('keep me\n');
        expect(existsSync(join(dir, 'data/doomed.txt'))).toBe(false);
      } finally {
        await run('umount', [dir]);
      }
      await api.call('snapshots', 'Remove', { ...sn, key: 'c-commit-view' });
      await api.call('snapshots', 'Remove', { ...sn, key: 'c-commit-layer' });
    } finally {
      await api.endLease().catch(() => {});
      api.close();
    }
    await ok(['containers', 'rm', 'c-commit']);
  }, 180_000);

  it('a container keeps running across a snapshotter restart; devices come back after a daemon restart', async () => {
    await ok(['run', '-d', '--snapshotter', 'dadi', small.ref, 'c-restart', 'sleep', '600']);
    try {
      await snap!.stop();
      await startSnap();
      const r = await ok(['task', 'exec', '--exec-id', 'after-restart', 'c-restart', 'sh', '-c', 'cat /data/keep.txt']);
      expect(r.stdout).toBe('keep me\n');
      const m = await okOnceReconnected(['snapshots', '--snapshotter', 'dadi', 'mounts', '/x', 'c-restart']);
      expect(m.stdout).toContain('lowerdir=');
    } finally {
      await ctr(['task', 'kill', '-s', 'KILL', 'c-restart']);
      await waitTaskStopped('c-restart');
      await ctr(['task', 'rm', '-f', 'c-restart']);
      await ctr(['containers', 'rm', 'c-restart']);
    }
    // A created (not started) container, then the host's devices go away (snapshotter and daemon
    // stop, as at a reboot): the restarted snapshotter mounts the image again for it.
    await ok(['containers', 'create', '--snapshotter', 'dadi', small.ref, 'c-reboot', 'cat', '/data/keep.txt']);
    await snap!.stop();
    const daemon = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false });
    await daemon.shutdown();
    expect((await readMounts()).filter((x) => x.mountPoint.startsWith(`${snapRoot()}/`))).toEqual([]);
    await startSnap();
    const t = await okOnceReconnected(['task', 'start', 'c-reboot']);
    expect(t.stdout).toBe('keep me\n');
    await ok(['containers', 'rm', 'c-reboot']);
  }, 180_000);

  it('block mode: the container writes to its own writable block layer over the lazy image', async () => {
    await snap!.stop();
    await startSnap(['--rw-mode', 'block']);
    try {
      await dadiPull(small.ref);
      await okOnceReconnected([
        'containers',
        'create',
        '--snapshotter',
        'dadi',
        small.ref,
        'c-block',
        '--',
        'sh',
        '-c',
        'echo written > /data/new.txt; cat /data/new.txt /data/keep.txt',
      ]);
      const daemon = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false });
      const rw = (await daemon.ps()).filter((d) => d.rw);
      expect(rw).toHaveLength(1);
      expect(rw[0]!.writable?.data).toMatch(/\/block\/writable_data$/);
      const r = await ok(['task', 'start', 'c-block']);
      expect(r.stdout).toBe('written\nkeep me\n');
      await ok(['containers', 'rm', 'c-block']);
      // containerd removes the snapshot from the snapshotter in its next garbage collection.
      let left = (await daemon.ps()).filter((d) => d.rw);
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await new Promise((res) => setTimeout(res, 100));
        left = (await daemon.ps()).filter((d) => d.rw);
      }
      expect(left).toEqual([]);
    } finally {
      await snap!.stop();
      await startSnap();
      // containerd's connection to the stopped snapshotter backs off before it redials; the next
      // test's first call must not land in that window.
      await okOnceReconnected(['snapshots', '--snapshotter', 'dadi', 'ls']);
    }
  }, 180_000);

  it("record-trace labels record a container's reads into the file; the file, or an acceleration layer made of it, is replayed", async () => {
    await dadiPull(small.ref);
    const file = join(root, 'containerd.trace');
    const traceLabels = (f: string) => [
      '--snapshotter-label',
      `${Label.recordTrace}=yes`,
      '--snapshotter-label',
      `${Label.recordTracePath}=${f}`,
    ];
    const daemon = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false });
    const traceOfDevice = async () =>
      (await daemon.ps()).filter((d) => d.target.startsWith(`${snapRoot()}/`) && d.trace).map((d) => d.trace);
    // An absent file: the container's own device records; its snapshot's removal (containerd's GC
    // after `containers rm`) writes the trace.
    await ok([
      'containers',
      'create',
      '--snapshotter',
      'dadi',
      ...traceLabels(file),
      small.ref,
      'c-rec',
      'cat',
      '/data/keep.txt',
    ]);
    expect(await traceOfDevice()).toEqual([expect.objectContaining({ mode: 'record', source: 'record-trace' })]);
    expect((await ok(['task', 'start', 'c-rec'])).stdout).toBe('keep me\n');
    await ok(['containers', 'rm', 'c-rec']);
    for (let i = 0; i < 100 && !(existsSync(file) && (await readFile(file)).length > 0); i++) {
      await new Promise((res) => setTimeout(res, 100));
    }
    const recorded = await readFile(file);
    const records = decodeTrace(recorded, file);
    expect(records.length).toBeGreaterThan(0);

    // The same labels on a file with a trace: replayed on the container's own device.
    await ok(['containers', 'create', '--snapshotter', 'dadi', ...traceLabels(file), small.ref, 'c-replay', 'true']);
    expect(await traceOfDevice()).toEqual([expect.objectContaining({ mode: 'replay', source: 'record-trace' })]);
    await ok(['containers', 'rm', 'c-replay']);

    // The trace as the image's acceleration layer: pulled without its data, replayed by the image's device.
    const layer = [join(root, 'layer.tar')];
    await pushImage(
      reg.host,
      'dadi/small',
      'v1-trace',
      layer,
      { Env: ['PATH=/usr/bin:/bin'] },
      {
        accelerationTrace: recorded,
      },
    );
    const ref = `${proxy.host}/dadi/small:v1-trace`;
    await dadiPull(ref);
    await ok(['containers', 'create', '--snapshotter', 'dadi', ref, 'c-accel', 'cat', '/data/keep.txt']);
    const devices = (await daemon.ps()).filter((d) => d.target.startsWith(`${snapRoot()}/`) && d.trace);
    // One layer stacked: the acceleration layer is replayed, never mounted.
    expect(devices.map((d) => [d.layers.length, d.trace?.mode, d.trace?.source])).toEqual([
      [1, 'replay', 'acceleration-layer'],
    ]);
    expect((await ok(['task', 'start', 'c-accel'])).stdout).toBe('keep me\n');
    await ok(['containers', 'rm', 'c-accel']);
    await ok(['images', 'rm', ref]);
  }, 180_000);

  it.skipIf(!SLOW)(
    'runs the converted Debian image lazily, as the unpacked source image reads',
    async () => {
      const layout = await debianLayout();
      const unpacked = join(root, 'debian-ref');
      const u = await run('umoci', ['unpack', '--image', `${layout}:v4`, unpacked]);
      expect(u.code, u.stderr).toBe(0);
      const osRelease = await readFile(join(unpacked, 'rootfs/etc/os-release'), 'utf8');
      const usrBin = (await readdir(join(unpacked, 'rootfs/usr/bin'))).length;
      const conv = await runDadi(['convert', '-q', '--json', `oci:${layout}:v4`, `${reg.host}/debian/app:dadi`], {
        env,
      });
      expect(conv.code, conv.stderr).toBe(0);
      const imageBytes: number = JSON.parse(conv.stdout).layers.reduce(
        (a: number, l: { size: number }) => a + l.size,
        0,
      );
      const ref = `${proxy.host}/debian/app:dadi`;
      const before = proxy.bodyBytes;
      await dadiPull(ref);
      const r = await ok([
        'run',
        '--rm',
        '--snapshotter',
        'dadi',
        ref,
        'debian-run',
        'sh',
        '-c',
        'cat /etc/os-release; ls /usr/bin | wc -l',
      ]);
      expect(r.stdout).toBe(`${osRelease}${usrBin}\n`);
      const served = proxy.bodyBytes - before;
      console.log(
        `containerd Debian run: registry served ${served} of ${imageBytes} image bytes (${((100 * served) / imageBytes).toFixed(1)}%)`,
      );
      expect(served).toBeLessThan(imageBytes * 0.25);
    },
    600_000,
  );

  it('removes everything: no snapshot, device or mount is left', async () => {
    // containerd must have reconnected to the last restarted snapshotter for its GC to reach it.
    await okOnceReconnected(['snapshots', '--snapshotter', 'dadi', 'ls']);
    for (const c of (await ok(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) {
      await ok(['containers', 'rm', c]);
    }
    const images = (await ok(['images', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
    expect(images.length).toBeGreaterThan(0);
    await ok(['images', 'rm', '--sync', ...images]);
    const left = await ok(['snapshots', '--snapshotter', 'dadi', 'ls']);
    expect(left.stdout.trim().split('\n').slice(1)).toEqual([]);
    const meta = JSON.parse(await readFile(join(snapRoot(), 'metadata.json'), 'utf8'));
    expect(meta.snapshots).toEqual([]);
    const daemon = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false });
    expect(await daemon.ps()).toEqual([]);
    expect((await readMounts()).filter((x) => x.mountPoint.startsWith(`${root}/`))).toEqual([]);
  }, 180_000);

  /** containerd reconnects to a restarted proxy plugin with a backoff: ask until it has. */
  async function okOnceReconnected(args: string[]) {
    let r = await ctr(args);
    for (let i = 0; i < 60 && r.code !== 0 && /connection refused|Unavailable|unavailable/.test(r.stderr); i++) {
      await new Promise((res) => setTimeout(res, 500));
      r = await ctr(args);
    }
    expect(r.code, `ctr ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  }

  async function waitTaskStopped(id: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const ls = await ctr(['task', 'ls']);
      if (!new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, 'm').test(ls.stdout)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});
