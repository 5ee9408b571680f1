// runc as a child process: `runc --root STATE run --bundle B ID` with the container's stdout and
// stderr streamed to ours (or to given streams), its exit code returned; kill, delete, list, and
// removal of the cgroup folders runc leaves behind (cgroup v1: one per controller hierarchy).
// Not the bundle (bundle.ts) nor the rootfs (container.ts).
//
// @example
//   const code = await runcRun({ root: '/run/dadi/runc', bundle: B, id: 'c1' });
//   await runcDelete('/run/dadi/runc', 'c1');
//   await removeCgroup('/dadi/c1');

import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DadiError } from '../errors.js';
import { runProgram } from '../export/system.js';
import { exitCodeOf } from '../util/exit-code.js';

export const RUNC = process.env.DADI_RUNC ?? 'runc';
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface RuncRunOptions {
  /** runc's state folder (`--root`). */
  root: string;
  bundle: string;
  id: string;
  /** Where the container's output goes; default: this process's stdout/stderr (inherited fds). */
  stdout?: Writable;
  stderr?: Writable;
  /** Called once runc is spawned (to forward signals, kill it, …). */
  onSpawn?: (child: ChildProcess) => void;
  /** Called at the container's first output on `stdout` or `stderr` (only piped output is seen). */
  onFirstOutput?: () => void;
}

/**
 * Run the container to completion; resolves with its exit code (128+N when killed by signal N, as
 * runc reports it). The container's stdin is /dev/null.
 */
export function runcRun(opts: RuncRunOptions): Promise<number> {
  return prepareRuncRun(opts).start();
}

/** A `runc run` forked ahead (prepareRuncRun): started or cancelled exactly once. */
export interface PreparedRuncRun {
  /** Run the container now; resolves with its exit code as runcRun does. */
  start(): Promise<number>;
  /** Do not run it: the waiting shell exits without starting runc. */
  cancel(): Promise<void>;
}

/**
 * The shell that stands in for runc until it is told to go (fd 3): then it becomes runc (exec),
 * so runc's exit code, signals and output are the shell's; told nothing, it exits 125.
 */
const EXEC_WHEN_TOLD = 'read -r go <&3; exec 3<&-; [ "$go" = run ] || exit 125; exec "$@"';

/**
 * `runc run`, its process made now and its container started later: a fork blocks this process
 * for as long as copying its page tables takes (10-30 ms for the CLI on these VMs), so the CLI
 * forks while it waits for the daemon's mount instead of after the bundle is written. The child
 * is a shell waiting on a pipe; start() tells it to exec runc with these arguments.
 */
export function prepareRuncRun(opts: RuncRunOptions): PreparedRuncRun {
  const args = ['--root', opts.root, 'run', '--bundle', opts.bundle, opts.id];
  const child = spawn('sh', ['-c', EXEC_WHEN_TOLD, 'dadi-runc', RUNC, ...args], {
    stdio: ['ignore', opts.stdout ? 'pipe' : 'inherit', opts.stderr ? 'pipe' : 'inherit', 'pipe'],
  });
  const go = child.stdio[3] as Writable;
  go.on('error', () => {}); // the shell gone early: its exit tells why
  const piped: Promise<void>[] = [];
  let first = opts.onFirstOutput;
  const pipe = (from: NodeJS.ReadableStream | null, to: Writable | undefined) => {
    if (!from || !to) return;
    from.once('data', () => {
      first?.();
      first = undefined;
    });
    // pipeline forwards errors (.pipe would leave them unhandled); end: false keeps `to` open.
    piped.push(pipeline(from, to, { end: false }).catch(() => {}));
  };
  pipe(child.stdout, opts.stdout);
  pipe(child.stderr, opts.stderr);
  const exited = new Promise<number>((res, rej) => {
    child.once('error', (e) => rej(new DadiError('EIO', `${RUNC}: cannot start: ${e.message}`, { cause: e })));
    child.once('close', async (code, signal) => {
      await Promise.all(piped);
      res(exitCodeOf(code, signal));
    });
  });
  exited.catch(() => {}); // awaited by start() or cancel()
  let told = false;
  const tell = (word: string) => {
    if (told) throw new DadiError('EINVAL', `runc run ${opts.id}: already started or cancelled`);
    told = true;
    go.end(word);
  };
  return {
    start() {
      tell('run\n');
      opts.onSpawn?.(child);
      return exited;
    },
    async cancel() {
      tell('');
      await exited.catch(() => {});
    },
  };
}

/** `runc kill ID SIGNAL` (ignores "container not running"). */
export async function runcKill(root: string, id: string, signal = 'KILL'): Promise<void> {
  await runProgram(RUNC, ['--root', root, 'kill', id, signal], { timeoutMs: 30_000 });
}

/** `runc delete --force ID`; harmless when the container does not exist. */
export async function runcDelete(root: string, id: string): Promise<void> {
  const r = await runProgram(RUNC, ['--root', root, 'delete', '--force', id], { timeoutMs: 30_000 });
  if (r.code !== 0 && !/does not exist|not exist|no such/i.test(r.stderr)) {
    throw new DadiError('EIO', `runc delete ${id} failed: ${r.stderr.trim()}`);
  }
}

export interface RuncContainer {
  id: string;
  pid: number;
  status: string;
  bundle: string;
}

/** `runc list` of a state folder (empty when the folder does not exist). */
export async function runcList(root: string): Promise<RuncContainer[]> {
  if (!(await stat(root).catch(() => undefined))) return [];
  const r = await runProgram(RUNC, ['--root', root, 'list', '--format', 'json'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new DadiError('EIO', `runc list failed: ${r.stderr.trim()}`);
  const list = JSON.parse(r.stdout.trim() || 'null') as RuncContainer[] | null;
  return list ?? [];
}

/**
 * The cgroup folders of `cgroupsPath` that exist, one per mounted hierarchy (deepest first).
 * With cgroup v1 runc makes one in every controller; a leftover one keeps a dead container's name.
 */
export async function cgroupDirs(cgroupsPath: string): Promise<string[]> {
  const rel = cgroupsPath.replace(/^\/+/, '');
  if (!rel || rel.includes('..')) throw new DadiError('EINVAL', `bad cgroup path ${JSON.stringify(cgroupsPath)}`);
  const out: string[] = [];
  for (const h of await readdir(CGROUP_ROOT).catch(() => [] as string[])) {
    const dir = join(CGROUP_ROOT, h, rel);
    if ((await stat(dir).catch(() => undefined))?.isDirectory()) out.push(dir);
  }
  return out;
}

/**
 * Remove the cgroup folders of `cgroupsPath` in every hierarchy; returns the ones that could not
 * be removed (still holding processes). Shared parents such as `/dadi` stay: removing an empty one
 * races with another container's start, whose runc makes the parent and then its own folder inside
 * it — a parent removed in between fails that start with "mkdir …: no such file or directory".
 */
export async function removeCgroup(cgroupsPath: string): Promise<string[]> {
  const rel = cgroupsPath.replace(/^\/+/, '');
  if (!rel || rel.split('/').includes('..')) {
    throw new DadiError('EINVAL', `bad cgroup path ${JSON.stringify(cgroupsPath)}`);
  }
  const left: string[] = [];
  for (const h of await readdir(CGROUP_ROOT).catch(() => [] as string[])) {
    const dir = join(CGROUP_ROOT, h, rel);
    try {
      await rmdir(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') left.push(dir);
    }
  }
  return left;
}
