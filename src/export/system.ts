// Small helpers over the host's mount table and tools (mount, umount, losetup) that the exports
// share: run a program asynchronously, parse /proc/self/mountinfo, find and abort FUSE connections.
// Not a policy layer: callers decide the order of teardown.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DadiError } from '../errors.js';

export interface ProgramResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program without blocking the event loop; never rejects on a non-zero exit. */
export function runProgram(
  cmd: string,
  args: string[],
  opts: { stdio3?: number; timeoutMs?: number; onStdout?: (chunk: Buffer) => void } = {},
): Promise<ProgramResult> {
  return new Promise((res, rej) => {
    const stdio: (number | 'pipe' | 'ignore')[] = ['ignore', 'pipe', 'pipe'];
    if (opts.stdio3 !== undefined) stdio.push(opts.stdio3);
    const child = spawn(cmd, args, { stdio });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => {
      out.push(d);
      opts.onStdout?.(d);
    });
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      rej(new DadiError('EIO', `${cmd}: cannot start: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      res({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
  });
}

/** Run a program and fail with its stderr when it exits non-zero. */
export async function runChecked(cmd: string, args: string[], what: string): Promise<string> {
  const r = await runProgram(cmd, args, { timeoutMs: 60_000 });
  if (r.code !== 0) {
    throw new DadiError('EIO', `${what}: ${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  major: number;
  minor: number;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** The mounts of this process's namespace (from /proc/self/mountinfo). */
export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/**
 * readMounts without the thread pool: /proc/self/mountinfo is generated in memory and read in well
 * under a millisecond, while each of readFile's four pool round trips waits behind the other work
 * of a busy process (the snapshotter's Prepare on a container's start path).
 */
export function readMountsSync(): MountEntry[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0) continue;
    const [major, minor] = f[2]!.split(':').map(Number);
    out.push({
      mountPoint: unescapeMount(f[4]!),
      fsType: f[sep + 1]!,
      source: unescapeMount(f[sep + 2] ?? ''),
      major: major!,
      minor: minor!,
    });
  }
  return out;
}

/** The mount at exactly `dir` (the last one if stacked), if any. */
export async function findMount(dir: string): Promise<MountEntry | undefined> {
  return lastAt(await readMounts(), dir);
}

/** findMount through readMountsSync. */
export function findMountSync(dir: string): MountEntry | undefined {
  return lastAt(readMountsSync(), dir);
}

function lastAt(mounts: MountEntry[], dir: string): MountEntry | undefined {
  const abs = resolve(dir);
  return mounts.filter((m) => m.mountPoint === abs).pop();
}

const FUSECTL = '/sys/fs/fuse/connections';

/**
 * Abort a FUSE connection (every pending and future request fails, the server's reads get ENODEV).
 * Mounts the fusectl filesystem first if the host has not.
 */
export async function abortFuseConnection(minor: number): Promise<void> {
  const path = `${FUSECTL}/${minor}/abort`;
  const exists = () =>
    access(path).then(
      () => true,
      () => false,
    );
  if (!(await exists())) {
    const mounted = (await readMounts()).some((m) => m.mountPoint === FUSECTL);
    if (!mounted) await runProgram('mount', ['-t', 'fusectl', 'fusectl', FUSECTL]);
    if (!(await exists())) return;
  }
  await writeFile(path, '1');
}

/**
 * Last-resort cleanup of a FUSE mount at `dir` whose server may be dead or stuck: abort its
 * connection, then detach it lazily. Harmless when nothing is mounted there.
 */
export async function forceUnmountFuse(dir: string): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const m = await findMount(dir);
    if (!m?.fsType.startsWith('fuse')) return;
    await abortFuseConnection(m.minor).catch(() => {});
    await runProgram('umount', ['-l', resolve(dir)]);
  }
}
