// The host runtime end to end, as root: daemon auto-start (over a stale socket), read-only mount +
// ps + umount, `runContainer` with output streamed and exit codes propagated, a writable block
// layer committed as a new layer and stacked, overlay mode, and SIGINT of the running CLI.
// After every test — failing ones too — no mount, loop device, runc container, cgroup or daemon of
// ours may remain; the assertion runs in afterEach, emergency cleanup in finally/afterAll.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loopDevicesUnder, readMounts } from '../../src/export/index.js';
import { openLayerOutput } from '../../src/image/layer-output.js';
import {
  commitContainerLayer,
  DaemonClient,
  listContainers,
  readContainer,
  removeContainer,
  runContainer,
  statePaths,
} from '../../src/runtime/index.js';
import { openLayerFile } from '../lsmt-helpers.js';
import { missing, requireOrSkip } from '../require.js';
import { buildRootfs, emergencyCleanup, imageToLayer, leftovers, makeExt4, pidAlive } from './runtime-helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const canRun = requireOrSkip(
  'runtime tests',
  missing({
    root: true,
    files: ['/dev/fuse'],
    tools: ['runc', 'mkfs.ext4', 'losetup'],
    hint: 'apt-get install runc fuse3 e2fsprogs mount',
  }),
);

const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

function capture() {
  const s = new PassThrough();
  let text = '';
  s.on('data', (d) => (text += d));
  return { stream: s, text: () => text };
}

describe.skipIf(!canRun)('runtime: daemon, mounts, containers', () => {
  let root: string;
  let state: string;
  let baseLayer: string;
  let baseSha: string;
  const config = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers' as const, diff_ids: [] },
    config: { Env: ['PATH=/usr/bin:/bin', 'GREETING=hi'], Cmd: ['sh', '-c', 'echo default cmd'], WorkingDir: '/data' },
  };
  const names: string[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dadi-rt-'));
    state = join(root, 'state');
    const rootfs = join(root, 'rootfs-src');
    await buildRootfs(rootfs);
    await makeExt4(rootfs, join(root, 'base.img'));
    baseLayer = join(root, 'base.layer');
    await imageToLayer(join(root, 'base.img'), baseLayer);
    await rm(join(root, 'base.img'));
    baseSha = await sha(baseLayer);
  });

  afterEach(async () => {
    // Every test ends with the daemon shut down and nothing of ours left.
    const c = await DaemonClient.connect({ stateDir: state, autoStart: false }).catch(() => undefined);
    await c?.shutdown().catch(() => {});
    const left = await leftovers(state, names);
    if (left.length) await emergencyCleanup(state, names);
    expect(left).toEqual([]);
  });

  afterAll(async () => {
    if (!root) return;
    await emergencyCleanup(state, names);
    const left = await leftovers(state, names);
    if (left.length === 0) await rm(root, { recursive: true, force: true });
    else console.error(`left in place (${root}): ${left.join('; ')}`);
  });

  it('auto-starts the daemon over a stale socket; mounts read-only; ps; umount', async () => {
    const p = statePaths(state);
    await mkdir(p.root, { recursive: true });
    await writeFile(p.socket, ''); // stale: a plain file where the socket should be
    // Three CLI invocations at once start exactly one daemon.
    const clients = await Promise.all([1, 2, 3].map(() => DaemonClient.connect({ stateDir: state })));
    const starters = clients.filter((c) => c.startedPid !== undefined);
    expect(starters).toHaveLength(1);
    const client = starters[0]!;
    const pings = await Promise.all(clients.map((c) => c.ping()));
    expect(new Set(pings.map((p) => p.pid))).toEqual(new Set([client.startedPid]));

    const mnt = join(root, 'mnt/ro/rootfs');
    await mkdir(mnt, { recursive: true });
    const dev = await client.mount({ layers: [baseLayer], target: mnt });
    expect(dev.rw).toBe(false);
    expect(await readFile(join(mnt, 'etc/os-release'), 'utf8')).toContain('ID=dadi-test');
    expect(await readFile(join(mnt, 'data/keep.txt'), 'utf8')).toBe('keep me\n');

    // A second client (another CLI invocation) sees the same device.
    const again = await DaemonClient.connect({ stateDir: state, autoStart: false });
    const ps = await again.ps();
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatchObject({ id: dev.id, target: mnt, rw: false, layers: [{ kind: 'file', ref: baseLayer }] });
    expect(ps[0]!.bytesRead).toBeGreaterThan(0);
    expect(ps[0]!.layers[0]!.blobBytesRead).toBeGreaterThan(0);
    await expect(again.mount({ layers: [baseLayer], target: mnt })).rejects.toThrow(/already has a dadi device/);
    await expect(again.mount({ layers: [join(root, 'nope')], target: mnt })).rejects.toThrow();

    await again.umount(mnt);
    expect(await again.ps()).toEqual([]);
    expect((await readMounts()).some((m) => m.mountPoint.startsWith(state))).toBe(false);
  });

  it('a new daemon cleans up after a killed one (no dead FUSE mount left)', async () => {
    const client = await DaemonClient.connect({ stateDir: state });
    const pid = client.startedPid!;
    const mnt = join(root, 'mnt/crash/rootfs');
    await mkdir(mnt, { recursive: true });
    await client.mount({ layers: [baseLayer], target: mnt });
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(pidAlive(pid)).toBe(false);
    expect((await readMounts()).some((m) => m.mountPoint === mnt)).toBe(true); // dead ext4 + FUSE remain
    const next = await DaemonClient.connect({ stateDir: state }); // the new daemon scrubs at start
    expect(next.startedPid).not.toBe(pid);
    expect(await next.ps()).toEqual([]);
    expect((await readMounts()).filter((m) => m.mountPoint.startsWith(root))).toEqual([]);
    expect(await loopDevicesUnder(state)).toEqual([]);
  });

  it('runs a container: output streamed, env/cwd/user from the image config, exit codes propagated', async () => {
    names.push('hello', 'three', 'user');
    const out = capture();
    const r = await runContainer({
      layers: [baseLayer],
      config,
      cmd: [
        'sh',
        '-c',
        'echo hello; cat /etc/os-release; echo "$GREETING $PWD $(id -u):$(id -g) $HOSTNAME"; echo oops >&2',
      ],
      name: 'hello',
      rm: true,
      stateDir: state,
      stdout: out.stream,
      stderr: out.stream,
    });
    expect(r.exitCode).toBe(0);
    expect(out.text()).toContain('hello\n');
    expect(out.text()).toContain('ID=dadi-test');
    expect(out.text()).toContain('hi /data 0:0 hello');
    expect(out.text()).toContain('oops');

    const three = await runContainer({
      layers: [baseLayer],
      config,
      cmd: ['sh', '-c', 'exit 3'],
      name: 'three',
      rm: true,
      stateDir: state,
      stdout: out.stream,
      stderr: out.stream,
    });
    expect(three.exitCode).toBe(3);

    const u = capture();
    const user = await runContainer({
      layers: [baseLayer],
      config: { ...config, config: { ...config.config, User: 'app' } },
      cmd: ['sh', '-c', 'id; echo $HOME; ls /sys/class/net'],
      name: 'user',
      rm: true,
      stateDir: state,
      stdout: u.stream,
      stderr: u.stream,
    });
    expect(user.exitCode).toBe(0);
    expect(u.text()).toMatch(/uid=1000\(app\) gid=1000\(app\) groups=1000\(app\),2000\(extra\)/);
    expect(u.text()).toContain('/home/app');
    expect(u.text().trim().split('\n').pop()).toBe('lo'); // empty network namespace
    expect(await listContainers({ stateDir: state })).toEqual([]);
  });

  it('block mode: writes and deletes survive as a committed layer; the base is unchanged', async () => {
    names.push('writer');
    const out = capture();
    const r = await runContainer({
      layers: [baseLayer],
      config,
      cmd: [
        'sh',
        '-c',
        'echo new > /data/new.txt && mkdir -p /data/dir && echo x > /data/dir/f && rm /data/doomed.txt && ls /data',
      ],
      name: 'writer',
      stateDir: state,
      stdout: out.stream,
      stderr: out.stream,
    });
    expect(r.exitCode, out.text()).toBe(0);
    const rec = await readContainer('writer', { stateDir: state });
    expect(rec).toMatchObject({ status: 'exited', exitCode: 0, rootfsMode: 'block' });
    expect(rec.deviceId).toBeUndefined();
    expect((await stat(rec.writable!.data)).size).toBeGreaterThan(4096);

    const newLayer = join(root, 'writer.layer');
    const res = await commitContainerLayer('writer', await openLayerOutput(newLayer, { zfile: {}, tar: true }), {
      stateDir: state,
      userTag: 'writer test',
    });
    expect(res.dataBytes).toBeGreaterThan(0);
    const base = await openLayerFile(baseLayer);
    const top = await openLayerFile(newLayer);
    expect(top.header.parentUuid.toUpperCase()).toBe(base.uuid);
    await base.close();
    await top.close();

    await removeContainer('writer', { stateDir: state });
    await expect(readContainer('writer', { stateDir: state })).rejects.toThrow(/no container/);

    const client = await DaemonClient.connect({ stateDir: state });
    const both = join(root, 'mnt/both/rootfs');
    const only = join(root, 'mnt/only/rootfs');
    await mkdir(both, { recursive: true });
    await mkdir(only, { recursive: true });
    await client.mount({ layers: [baseLayer, newLayer], target: both });
    await client.mount({ layers: [baseLayer], target: only });
    try {
      expect(await readFile(join(both, 'data/new.txt'), 'utf8')).toBe('new\n');
      expect(await readFile(join(both, 'data/dir/f'), 'utf8')).toBe('x\n');
      expect(await readFile(join(both, 'data/keep.txt'), 'utf8')).toBe('keep me\n');
      await expect(stat(join(both, 'data/doomed.txt'))).rejects.toThrow();
      await expect(stat(join(only, 'data/new.txt'))).rejects.toThrow();
      expect(await readFile(join(only, 'data/doomed.txt'), 'utf8')).toBe('delete me\n');
      expect(await client.ps()).toHaveLength(2);
    } finally {
      await client.umount(both);
      await client.umount(only);
    }
    expect(await sha(baseLayer)).toBe(baseSha);
  });

  it('overlay mode: writes land in the upper dir; --rm removes everything', async () => {
    names.push('ovl', 'ovl-rm');
    const out = capture();
    const r = await runContainer({
      layers: [baseLayer],
      config,
      cmd: ['sh', '-c', 'echo up > /data/up.txt && rm /data/doomed.txt && cat /data/keep.txt'],
      name: 'ovl',
      rootfsMode: 'overlay',
      stateDir: state,
      stdout: out.stream,
      stderr: out.stream,
    });
    expect(r.exitCode, out.text()).toBe(0);
    expect(out.text()).toBe('keep me\n');
    const rec = await readContainer('ovl', { stateDir: state });
    expect(await readFile(join(rec.overlay!.upper, 'data/up.txt'), 'utf8')).toBe('up\n');
    const unused = { name: 'unused', position: 0, write: async () => {}, end: async () => {} };
    await expect(commitContainerLayer('ovl', unused, { stateDir: state })).rejects.toThrow(/only block-mode/);
    await removeContainer('ovl', { stateDir: state });
    await expect(stat(rec.dir)).rejects.toThrow();

    const r2 = await runContainer({
      layers: [baseLayer],
      config,
      name: 'ovl-rm',
      rootfsMode: 'overlay',
      rm: true,
      stateDir: state,
      stdout: out.stream,
      stderr: out.stream,
    });
    expect(r2.exitCode).toBe(0);
    expect(out.text()).toContain('default cmd');
    expect(await listContainers({ stateDir: state })).toEqual([]);
  });

  it('SIGINT of the running CLI stops the container and cleans up', async () => {
    names.push('sig');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(here, 'runtime-run-child.ts'),
        state,
        baseLayer,
        'sig',
        'sh',
        '-c',
        'echo started; sleep 30',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    child.stdout!.on('data', (d) => (text += d));
    child.stderr!.on('data', (d) => (text += d));
    const exited = new Promise<number>((r) => child.on('close', (c) => r(c ?? 128)));
    try {
      for (let i = 0; i < 600 && !text.includes('started'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(text).toContain('started');
      const t0 = Date.now();
      child.kill('SIGINT');
      const code = await exited;
      expect(code, text).toBe(0);
      expect(Date.now() - t0).toBeLessThan(20_000);
      const result = JSON.parse(text.trim().split('\n').pop()!) as { exitCode: number; interrupted: boolean };
      expect(result.interrupted).toBe(true);
      expect(result.exitCode).toBe(137); // pid 1 ignores SIGTERM: killed after the grace period
      expect(await listContainers({ stateDir: state })).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
