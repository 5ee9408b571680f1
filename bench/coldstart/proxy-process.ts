// The delaying, counting proxy (delay-proxy.ts) as a child process inside a network namespace,
// driven over its stdin: set the round trip, reset and read the counters, stop it by PID.
// Used by the cold-start network (net.ts) and the P2P cluster (bench/p2p/netns.ts).

import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ProxyStats } from './delay-proxy.js';
import { inNetns } from './util.js';

const HERE = resolve(fileURLToPath(import.meta.url), '..');

export interface ProxyProcess {
  pid: number;
  setRtt(ms: number): void;
  reset(): void;
  stats(): Promise<ProxyStats>;
  stop(): Promise<void>;
}

/** Stop a child we started: SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
export function stopChild(p: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
  return exited.then(() => clearTimeout(t));
}

/**
 * Start the proxy in `netns` listening on `listen` (host:port) and forwarding to `target`.
 * `corrupt`: flip bytes of every response body it carries (a peer that serves wrong bytes).
 */
export async function spawnProxy(opts: {
  netns: string;
  listen: string;
  target: string;
  rttMs?: number;
  corrupt?: boolean;
}): Promise<ProxyProcess> {
  const args = [
    '--import',
    'tsx',
    join(HERE, 'delay-proxy.ts'),
    '--listen',
    opts.listen,
    '--target',
    opts.target,
    '--rtt-ms',
    String(opts.rttMs ?? 0),
    ...(opts.corrupt ? ['--corrupt'] : []),
  ];
  const [cmd, argv] = inNetns(opts.netns, process.execPath, args);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'], cwd: resolve(HERE, '../..') });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const nextLine = () =>
    new Promise<string>((res, rej) => {
      const l = lines.shift();
      if (l !== undefined) return res(l);
      const t = setTimeout(() => rej(new Error(`proxy ${opts.listen} did not answer`)), 20_000);
      waiters.push((x) => {
        clearTimeout(t);
        res(x);
      });
    });
  const send = (cmd: string) => child.stdin!.write(`${cmd}\n`);
  const stop = async () => {
    process.off('exit', killOnExit);
    child.stdin!.end(); // the proxy exits when its control input closes
    await stopChild(child);
  };
  try {
    if ((await nextLine()) !== 'ready') throw new Error(`proxy ${opts.listen} did not start`);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    pid: child.pid!,
    setRtt: (ms) => send(`rtt ${ms}`),
    reset: () => send('reset'),
    async stats() {
      send('stats');
      return JSON.parse(await nextLine()) as ProxyStats;
    },
    stop,
  };
}
