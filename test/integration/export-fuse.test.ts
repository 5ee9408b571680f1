// FUSE single-file export + loop device + ext4 mount, end to end, as root.
//
// The FUSE server runs in a CHILD process (export-fuse-server.ts) with UV_THREADPOOL_SIZE=16 in its
// environment. Why not in the test process: every pending read on /dev/fuse pins a threadpool thread,
// and this process also does blocking fs work (readFile) on files of the ext4 that reads through the
// server. Vitest's worker has already started its pool (size 4) before a test file runs, so setting
// the variable here is too late; a child process gets a right-sized pool from its environment, and a
// hung or killed server can never hang the test runner itself.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryFile } from '../../src/blockfile/index.js';
import {
  detachLoop,
  FuseExport,
  forceUnmountFuse,
  loopDevicesUnder,
  mountImage,
  readMounts,
  runProgram as run,
  unmountFilesystem,
} from '../../src/export/index.js';
import { e2fsck } from '../ext4-tools.js';
import { missing, requireOrSkip } from '../require.js';

const here = dirname(fileURLToPath(import.meta.url));
const serverScript = join(here, 'export-fuse-server.ts');
const canRun = requireOrSkip(
  'FUSE export tests',
  missing({
    root: true,
    files: ['/dev/fuse'],
    tools: ['mkfs.ext4', 'losetup', 'debugfs'],
    hint: 'apt-get install fuse3 e2fsprogs mount',
  }),
);

interface Server {
  child: ChildProcess;
  connection: number;
  stdout: () => string;
  exited: Promise<number>;
  /** Ask the server to unmount and exit; resolves with its stats. */
  stop(): Promise<Record<string, number>>;
}

/** The loop device's direct I/O flag as losetup reports it ("1" or "0"). */
async function losetupDio(device: string): Promise<string> {
  const r = await run('losetup', ['--list', '--noheadings', '-O', 'DIO', device]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

async function startServer(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', serverScript, ...args], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '16' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  child.stdin!.on('error', () => {});
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? 128)));
  const ready = await new Promise<string>((res, rej) => {
    const t = setInterval(() => {
      const m = /ready (-?\d+)/.exec(out);
      if (m) {
        clearInterval(t);
        res(m[1]!);
      }
    }, 20);
    exited.then((code) => {
      clearInterval(t);
      rej(new Error(`FUSE server exited with ${code}: ${err}`));
    });
  });
  return {
    child,
    connection: Number(ready),
    stdout: () => out,
    exited,
    async stop() {
      child.stdin!.write('unmount\n');
      const code = await exited;
      expect(code, err).toBe(0);
      const last = out.trim().split('\n').pop()!;
      return JSON.parse(last) as Record<string, number>;
    },
  };
}

describe.skipIf(!canRun)('FUSE export + loop + ext4', () => {
  let root: string;
  let srcDir: string;
  let image: string;
  let fuseDir: string;
  let mnt: string;
  const servers: Server[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dadi-fuse-'));
    srcDir = join(root, 'src');
    await mkdir(join(srcDir, 'etc/deep/er'), { recursive: true });
    await writeFile(join(srcDir, 'etc/hostname'), 'dadi\n');
    await writeFile(join(srcDir, 'etc/deep/er/blob.bin'), randomBytes(3 << 20));
    await writeFile(join(srcDir, 'small.txt'), 'x'.repeat(5000));
    image = join(root, 'base.img');
    const r = await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', srcDir, image, '48M']);
    expect(r.code, r.stderr).toBe(0);
    // Mount points deep in a private folder, never directly under /tmp.
    fuseDir = join(root, 'mnt/a/fuse');
    mnt = join(root, 'mnt/a/rootfs');
    await mkdir(fuseDir, { recursive: true });
    await mkdir(mnt, { recursive: true });
  });

  /** Teardown in order even after a failure: ext4, loop devices, FUSE mount, server process. */
  async function cleanup(): Promise<void> {
    await unmountFilesystem(mnt, { lazy: true }).catch(() => {});
    for (const dev of await loopDevicesUnder(root)) await detachLoop(dev).catch(() => {});
    await forceUnmountFuse(fuseDir);
    for (const s of servers.splice(0)) {
      if (s.child.exitCode === null) s.child.kill('SIGKILL');
      await s.exited;
    }
  }

  async function expectNothingLeft(): Promise<void> {
    const mounts = (await readMounts()).filter((m) => m.mountPoint.startsWith(root));
    expect(mounts).toEqual([]);
    expect(await loopDevicesUnder(root)).toEqual([]);
  }

  afterEach(async () => {
    await cleanup();
    await expectNothingLeft();
  });
  afterAll(async () => {
    await cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('serves a memory-backed image read-only; ext4 through loop reads files equal to the source', async () => {
    // 2 ms per read (a remote-backed model) so that concurrent requests overlap in the server.
    const s = await startServer(['--image', image, '--dir', fuseDir, '--memory', '--delay-ms', '2']);
    servers.push(s);
    const disk = join(fuseDir, 'disk.img');
    expect((await stat(disk)).size).toBe((await stat(image)).size);
    expect((await run('cmp', [disk, image])).code).toBe(0);
    // Several requests in flight: parallel O_DIRECT readers on the FUSE file.
    const dd = await run('sh', [
      '-c',
      `for i in 0 1 2 3 4 5; do dd if=${disk} of=/dev/null bs=256k iflag=direct skip=$((i*16)) count=16 status=none & done; wait`,
    ]);
    expect(dd.code, dd.stderr).toBe(0);
    const m = await mountImage(disk, mnt, { readOnly: true, loopReadAheadKb: 48 });
    expect(m.loop.device).toMatch(/^\/dev\/loop\d+$/);
    const ra = await readFile(`/sys/block/${m.loop.device.slice('/dev/'.length)}/queue/read_ahead_kb`, 'utf8');
    expect(ra.trim()).toBe('48');
    // Direct I/O by default: the kernel reads the FUSE file with O_DIRECT, past its page cache.
    expect(m.loop.directIo).toBe(true);
    expect(await losetupDio(m.loop.device)).toBe('1');
    expect(m.steps.map((x) => x.step)).toEqual(['loop', 'ext4']);
    for (const rel of ['etc/hostname', 'etc/deep/er/blob.bin', 'small.txt']) {
      expect(Buffer.compare(await readFile(join(mnt, rel)), await readFile(join(srcDir, rel))), rel).toBe(0);
    }
    await m.unmount();
    const stats = await s.stop();
    expect(stats.reads).toBeGreaterThan(0);
    expect(stats.writes).toBe(0);
    expect(stats.maxInFlight).toBeGreaterThan(1);
  });

  it.each([
    ['LocalFile', false, true, true],
    ['MemoryFile', true, true, true],
    ['LocalFile, not durable', false, false, true],
    ['LocalFile, buffered loop', false, true, false],
  ])(
    'read-write (%s): writes in the mounted ext4 reach the BlockFile; e2fsck clean',
    async (_kind, memory, durable, dio) => {
      const img = join(root, `rw-${memory ? 'mem' : 'local'}${durable ? '' : '-volatile'}.img`);
      const dump = join(root, 'dump.img');
      await writeFile(img, await readFile(image));
      const s = await startServer([
        '--image',
        img,
        '--dir',
        fuseDir,
        '--rw',
        ...(durable ? [] : ['--not-durable']),
        ...(memory ? ['--memory', '--dump', dump] : []),
      ]);
      servers.push(s);
      const m = await mountImage(join(fuseDir, 'disk.img'), mnt, { readOnly: false, loopDirectIo: dio });
      expect(m.loop.directIo).toBe(dio);
      expect(await losetupDio(m.loop.device)).toBe(dio ? '1' : '0');
      const payload = randomBytes(1 << 20);
      await writeFile(join(mnt, 'new.bin'), payload);
      await writeFile(join(mnt, 'etc/hostname'), 'changed\n');
      await unlink(join(mnt, 'small.txt'));
      expect((await run('sync', ['-f', join(mnt, 'new.bin')])).code).toBe(0);
      await m.unmount();
      const stats = await s.stop();
      expect(stats.writes).toBeGreaterThan(0);
      expect(stats.syncs).toBeGreaterThan(0);
      // Not durable: the kernel's syncs are answered without syncing the layer (still every write lands).
      expect(stats.flushes).toBe(durable ? stats.syncs : 0);
      const result = memory ? dump : img;
      const fsck = await e2fsck(result);
      expect(fsck.code, fsck.output).toBe(0);
      const cat = await run('debugfs', ['-R', 'cat /etc/hostname', result]);
      expect(cat.stdout).toBe('changed\n');
      const out = join(root, 'new.out');
      await run('debugfs', ['-R', `dump /new.bin ${out}`, result]);
      expect(Buffer.compare(await readFile(out), payload)).toBe(0);
      const gone = await run('debugfs', ['-R', 'stat /small.txt', result]);
      expect(gone.stdout + gone.stderr).toMatch(/not found/i);
    },
  );

  it('mountBlockFile stacks FUSE, loop and ext4 in one process and tears them down in order', async () => {
    const img = join(root, 'stack.img');
    await writeFile(img, await readFile(image));
    const s = await startServer(['--image', img, '--dir', fuseDir, '--target', mnt, '--rw']);
    servers.push(s);
    expect(await readFile(join(mnt, 'etc/hostname'), 'utf8')).toBe('dadi\n');
    await writeFile(join(mnt, 'stacked.txt'), 'through the stack\n');
    const stats = await s.stop();
    expect(stats.writes).toBeGreaterThan(0);
    await expectNothingLeft();
    expect((await e2fsck(img)).code).toBe(0);
    expect((await run('debugfs', ['-R', 'cat /stacked.txt', img])).stdout).toBe('through the stack\n');
  });

  /** The server's arguments for mountBlockFile over the test image, in memory, plus `extra`. */
  const mountWhileOpening = (...extra: string[]): string[] => [
    '--image',
    image,
    '--dir',
    fuseDir,
    '--target',
    mnt,
    '--memory',
    ...extra,
  ];

  it('mountBlockFile sets up FUSE, loop and ext4 while the file is still opening', async () => {
    const s = await startServer(mountWhileOpening('--open-delay-ms', '400'));
    servers.push(s);
    expect(await readFile(join(mnt, 'etc/hostname'), 'utf8')).toBe('dadi\n');
    await s.stop();
    await expectNothingLeft();
  });

  it("mountBlockFile fails with the file's error when it cannot be opened, and leaves nothing mounted", async () => {
    await expect(startServer(mountWhileOpening('--open-fail', '--open-delay-ms', '200'))).rejects.toThrow(
      /the layers could not be opened \(test\)/,
    );
    await expectNothingLeft();
  });

  it('a killed server leaves ext4 failing with EIO and everything removable', async () => {
    const s = await startServer(['--image', image, '--dir', fuseDir, '--memory']);
    servers.push(s);
    const m = await mountImage(join(fuseDir, 'disk.img'), mnt, { readOnly: true });
    s.child.kill('SIGKILL');
    await s.exited;
    // Uncached data now fails (the connection is gone) instead of hanging.
    await expect(readFile(join(mnt, 'etc/deep/er/blob.bin'))).rejects.toThrow();
    await m.unmount({ lazy: true });
    await forceUnmountFuse(fuseDir);
    await expectNothingLeft();
  });

  it('an aborted connection ends the server loops (ENODEV) and leaves no mount', async () => {
    const s = await startServer(['--image', image, '--dir', fuseDir, '--memory']);
    servers.push(s);
    expect(s.connection).toBeGreaterThan(0);
    const { abortFuseConnection } = await import('../../src/export/system.js');
    await abortFuseConnection(s.connection);
    expect(await s.exited).toBe(0);
    expect(s.stdout()).toMatch(/aborted/);
    await forceUnmountFuse(fuseDir);
    await expectNothingLeft();
  });

  it('a filesystem that does not mount fails naming the mount, and leaves no loop device attached', async () => {
    const blank = join(root, 'blank.img');
    await writeFile(blank, Buffer.alloc(8 << 20));
    // The cleanup would detach a leaked device: check before it runs.
    await expect(mountImage(blank, mnt, { readOnly: true })).rejects.toThrow(
      /^mount \/dev\/loop\d+ on .*failed \(exit \d+\)/,
    );
    expect(await loopDevicesUnder(root)).toEqual([]);
    await expect(mountImage(join(root, 'missing.img'), mnt)).rejects.toThrow(/attach loop device to .*missing\.img/);
    expect(await loopDevicesUnder(root)).toEqual([]);
  });

  it('refuses to mount with a threadpool too small for its readers', async () => {
    await expect(FuseExport.mount(new MemoryFile(4096), resolve(fuseDir), { readers: 64 })).rejects.toThrow(
      /UV_THREADPOOL_SIZE/,
    );
    await expect(
      FuseExport.mount({ name: 'ro', size: 1, read: async () => 0, close: async () => {} }, resolve(fuseDir), {
        readOnly: false,
      }),
    ).rejects.toThrow(/not writable/);
  });
});
