// Helpers for the QEMU tests (issue #5, acceptance item 4): find a host kernel + initramfs, build a
// tiny bootable root filesystem without debootstrap (the host's dash, its shared libraries and an
// init script that prints a marker and powers off), run `dadi serve-nbd` as a child process, and
// boot QEMU under TCG (never /dev/kvm) until the marker shows on the serial console.
// Every process started here is stopped by its PID only.
//
//   const k = findKernel();                      // undefined → skip
//   await buildInitRootfs(dir, { marker });       // then mkfs.ext4 -d dir
//   const srv = await startServeNbd([ref, '--socket', sock, '--cache-dir', cache]);
//   const boot = await bootQemu({ kernel: k, socket: sock, marker });
//   const { stderr } = await srv.stop();          // "fetched … in N requests"

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './cli.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** QEMU children still running (a test that timed out leaves its boot pending): see killVmChildren. */
const liveChildren = new Set<ChildProcess>();

/** SIGKILL, by PID, every QEMU started here that is still running (for afterAll). */
export function killVmChildren(): void {
  for (const c of liveChildren) {
    if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
  }
  liveChildren.clear();
}

export interface Kernel {
  vmlinuz: string;
  initrd: string;
  version: string;
}

/** Compare dotted/dashed version strings numerically ("6.1.0-56" < "6.1.0-100"). */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+~]/);
  const pb = b.split(/[.\-+~]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isFinite(nx) && Number.isFinite(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/** The newest /boot/vmlinuz-V that has a matching /boot/initrd.img-V, or undefined. */
export function findKernel(bootDir = '/boot'): Kernel | undefined {
  let names: string[];
  try {
    names = readdirSync(bootDir);
  } catch {
    return undefined;
  }
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => existsSync(join(bootDir, `initrd.img-${v}`)))
    .sort(compareVersions);
  const version = versions.at(-1);
  if (!version) return undefined;
  return { vmlinuz: join(bootDir, `vmlinuz-${version}`), initrd: join(bootDir, `initrd.img-${version}`), version };
}

/** Shared objects (and the dynamic loader) a host binary needs, as absolute paths, from `ldd`. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const r = await run('ldd', [binary]);
  if (r.code !== 0) throw new Error(`ldd ${binary} failed: ${r.stderr || r.stdout}`);
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const arrow = /=>\s*(\/\S+)\s*\(/.exec(line);
    const bare = /^\s*(\/\S+)\s*\(/.exec(line);
    const p = arrow?.[1] ?? bare?.[1];
    if (p) libs.push(p);
  }
  return libs;
}

export interface InitRootfsOptions {
  /** Printed on the console by the init script (keep it out of the kernel command line). */
  marker: string;
  /** A line stored in /etc/dadi-release and printed after the marker: proves the init read the disk. */
  release?: string;
}

/** Path of the init script inside the image. */
export const INIT_PATH = '/sbin/dadi-init';

/**
 * A minimal root filesystem in `dir`: /bin/sh (the host's dash, symlinks resolved) with its
 * libraries at the same paths, empty /proc /sys /dev /run /tmp, /etc/dadi-release and an init
 * script that prints the marker, then powers the VM off through /proc/sysrq-trigger (the Debian
 * initramfs moves its /proc into the new root). If power-off fails, init exits, the kernel panics
 * and `panic=-1` + `-no-reboot` make QEMU exit.
 */
export async function buildInitRootfs(dir: string, o: InitRootfsOptions): Promise<void> {
  for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'run', 'tmp', 'etc'])
    await mkdir(join(dir, d), { recursive: true });
  const sh = '/bin/sh';
  await copyFile(sh, join(dir, 'bin/sh')); // copyFile follows the /bin/sh → dash symlink
  await chmod(join(dir, 'bin/sh'), 0o755);
  for (const lib of await sharedLibraries(sh)) {
    const dest = join(dir, lib);
    await mkdir(dirname(dest), { recursive: true });
    await copyFile(lib, dest);
    await chmod(dest, 0o755);
  }
  await writeFile(join(dir, 'etc/dadi-release'), `${o.release ?? 'dadi test rootfs'}\n`);
  const init = [
    '#!/bin/sh',
    '# dadi QEMU test init: prove we run from the image, then power off.',
    'read release < /etc/dadi-release',
    `echo "${o.marker} $release"`,
    'echo o > /proc/sysrq-trigger',
    '# Power-off is asynchronous: wait for it without exiting (exit = kernel panic).',
    'while :; do read up < /proc/uptime; done',
    '',
  ].join('\n');
  await writeFile(join(dir, INIT_PATH.slice(1)), init);
  await chmod(join(dir, INIT_PATH.slice(1)), 0o755);
}

/** Resolves when something accepts connections on the unix socket, rejects after `timeoutMs`. */
export async function waitForSocket(path: string, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path)) {
      const ok = await new Promise<boolean>((res) => {
        const s = connect(path);
        s.once('connect', () => {
          s.destroy();
          res(true);
        });
        s.once('error', () => res(false));
      });
      if (ok) return;
    }
    if (!alive()) throw new Error(`the server exited before listening on ${path}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${path} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Wait for a child to exit; SIGKILL it by PID after `graceMs`. Resolves with its exit code (or 128+signal). */
function waitExit(child: ChildProcess, graceMs: number): Promise<number> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      res(child.exitCode ?? 128);
      return;
    }
    const timer = setTimeout(() => {
      if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    }, graceMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      res(code ?? (signal ? 128 : 1));
    });
  });
}

export interface ServeNbd {
  pid: number;
  /** stderr so far. */
  stderr(): string;
  /** SIGTERM by PID (SIGKILL after 15 s); resolves with the exit code and full stderr. Idempotent. */
  stop(): Promise<{ code: number; stderr: string }>;
}

/**
 * `dadi serve-nbd ARGS…` from source as a child process; resolves once the socket (`--socket`,
 * which ARGS must contain) accepts connections.
 */
export async function startServeNbd(args: string[], opts: { timeoutMs?: number } = {}): Promise<ServeNbd> {
  const i = args.indexOf('--socket');
  const socket = i >= 0 ? args[i + 1] : undefined;
  if (!socket) throw new Error('startServeNbd: pass --socket PATH');
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/cli/entry.ts'), 'serve-nbd', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  child.stdout?.on('data', () => {});
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  let stopping: Promise<{ code: number; stderr: string }> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!exited() && child.pid) process.kill(child.pid, 'SIGTERM');
      const code = await waitExit(child, 15_000);
      return { code, stderr: err };
    })();
    return stopping;
  };
  try {
    await waitForSocket(socket, opts.timeoutMs ?? 30_000, () => !exited());
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n--- serve-nbd stderr ---\n${err}`);
  }
  if (!child.pid) throw new Error('serve-nbd has no pid');
  return { pid: child.pid, stderr: () => err, stop };
}

/** Parse the "fetched X (N bytes) in R requests" line `dadi` prints. */
export function parseFetchStats(stderr: string): { bytes: number; requests: number } | undefined {
  const m = /fetched .*?\((\d+) bytes\) in (\d+) requests/.exec(stderr);
  return m ? { bytes: Number(m[1]), requests: Number(m[2]) } : undefined;
}

export interface BootOptions {
  kernel: Kernel;
  /** NBD unix socket of the root disk. */
  socket: string;
  marker: string;
  /** Give up waiting for the marker after this long (default 120 s). */
  timeoutMs?: number;
  /** After the marker, wait this long for QEMU to power off before killing it (default 20 s). */
  exitGraceMs?: number;
  memoryMiB?: number;
}

export interface BootResult {
  sawMarker: boolean;
  /** The console line holding the marker. */
  markerLine?: string;
  /** ms from spawning QEMU to the marker (or to giving up). */
  msToMarker: number;
  /** ms from spawning QEMU until it exited. */
  msTotal: number;
  /** True when QEMU exited by itself (power-off), false when we had to kill it. */
  exitedByItself: boolean;
  exitCode: number;
  /** Serial console + QEMU messages. */
  console: string;
}

/**
 * Boot the kernel under TCG with the NBD export as a read-only virtio root disk, reading the serial
 * console from QEMU's stdout until the marker shows. QEMU is always gone when this resolves.
 */
export function bootQemu(o: BootOptions): Promise<BootResult> {
  const args = [
    '-accel',
    'tcg',
    '-machine',
    'q35',
    '-m',
    String(o.memoryMiB ?? 512),
    '-nographic',
    '-no-reboot',
    '-nic',
    'none',
    '-kernel',
    o.kernel.vmlinuz,
    '-initrd',
    o.kernel.initrd,
    '-append',
    `console=ttyS0 root=/dev/vda ro init=${INIT_PATH} panic=-1`,
    '-drive',
    `file=nbd:unix:${o.socket},format=raw,if=virtio,readonly=on`,
  ];
  const start = Date.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let out = '';
  let sawMarker = false;
  let msToMarker = 0;
  let exitedByItself = true;
  return new Promise((res, rej) => {
    let giveUp: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const killNow = () => {
      if (child.pid && child.exitCode === null && child.signalCode === null) {
        exitedByItself = false;
        process.kill(child.pid, 'SIGKILL');
      }
    };
    const onData = (d: Buffer) => {
      out += d.toString('latin1');
      if (!sawMarker && out.includes(o.marker)) {
        sawMarker = true;
        msToMarker = Date.now() - start;
        clearTimeout(giveUp);
        killTimer = setTimeout(killNow, o.exitGraceMs ?? 20_000);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(giveUp);
      clearTimeout(killTimer);
      rej(e);
    });
    giveUp = setTimeout(() => {
      msToMarker = Date.now() - start;
      killNow();
    }, o.timeoutMs ?? 120_000);
    child.once('close', (code, signal) => {
      liveChildren.delete(child);
      clearTimeout(giveUp);
      clearTimeout(killTimer);
      const markerLine = out
        .split(/\r?\n/)
        .find((l) => l.includes(o.marker))
        ?.trim();
      res({
        sawMarker,
        markerLine,
        msToMarker,
        msTotal: Date.now() - start,
        exitedByItself,
        exitCode: code ?? (signal ? 128 : 1),
        console: out,
      });
    });
  });
}
