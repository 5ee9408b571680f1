// Small process helpers for the cold-start benchmark: run a command (optionally inside a network
// namespace), capture its output, and time until a line appears. Not a general library.

import { type ChildProcess, spawn } from 'node:child_process';

/**
 * argv running `cmd` in network namespace `ns` only (nsenter --net): unlike `ip netns exec` it keeps
 * the mount namespace, so mounts made by the dadi daemon are visible to runc and vice versa.
 */
export function inNetns(ns: string, cmd: string, args: string[]): [string, string[]] {
  return ['nsenter', [`--net=/run/netns/${ns}`, cmd, ...args]];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion; throws with its stderr when it fails (unless `allowFail`). */
export async function sh(
  cmd: string,
  args: string[],
  opts: { netns?: string; env?: NodeJS.ProcessEnv; allowFail?: boolean; input?: string; quiet?: boolean } = {},
): Promise<RunResult> {
  const [c, a] = opts.netns ? inNetns(opts.netns, cmd, args) : [cmd, args];
  const child = spawn(c, a, {
    stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString('utf8');
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  if (child.stdin) {
    child.stdin.on('error', () => {}); // the command may exit without reading its input
    child.stdin.end(opts.input);
  }
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  if (code !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr.trim().slice(-2000)}`);
  }
  return { code, stdout, stderr };
}

export interface TimedRun extends RunResult {
  /** Seconds from spawn until `firstLine` matched on stdout (undefined if it never did). */
  firstOutputS: number | undefined;
  /** Seconds until the process exited. */
  totalS: number;
}

/** Spawn a command and time until a stdout line equals `firstLine`, then until it exits. */
export async function timedRun(
  cmd: string,
  args: string[],
  firstLine: string,
  opts: {
    netns?: string;
    env?: NodeJS.ProcessEnv;
    t0?: number;
    timeoutMs?: number;
    /** Called once, when `firstLine` appears. */
    onFirstOutput?: () => void;
  } = {},
): Promise<TimedRun> {
  const [c, a] = opts.netns ? inNetns(opts.netns, cmd, args) : [cmd, args];
  const t0 = opts.t0 ?? performance.now();
  const child: ChildProcess = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let stdout = '';
  let stderr = '';
  let firstOutputS: number | undefined;
  child.stdout!.on('data', (b: Buffer) => {
    stdout += b.toString('utf8');
    if (firstOutputS === undefined && stdout.split('\n').some((l) => l.trim() === firstLine)) {
      firstOutputS = (performance.now() - t0) / 1000;
      opts.onFirstOutput?.();
    }
  });
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString('utf8');
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  clearTimeout(timer);
  return { code, stdout, stderr, firstOutputS, totalS: (performance.now() - t0) / 1000 };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function log(msg: string): void {
  process.stderr.write(`[coldstart ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
