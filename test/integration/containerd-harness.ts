// A private containerd 1.6 (Debian's) for tests, with the dadi snapshotter registered as the proxy
// plugin `dadi`: root, state, sockets and config under one folder, started in the foreground and
// stopped by pid. Plus the `dadi snapshotter` process itself, restartable, and `ctr` against it.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMounts } from '../../src/export/system.js';
import { DaemonClient } from '../../src/runtime/client.js';
import { type RunResult, run } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';
import { emergencyCleanup } from './runtime-helpers.js';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../..');

/** containerd, ctr, runc and the API definitions the snapshotter loads. */
export function haveContainerd(what: string): boolean {
  return requireOrSkip(
    what,
    missing({
      root: true,
      tools: ['containerd', 'ctr', 'runc'],
      files: ['/usr/share/gocode/src/github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto'],
      hint: 'apt-get install containerd golang-github-containerd-containerd-dev runc',
    }),
  );
}

export interface Containerd {
  socket: string;
  snapshotterSocket: string;
  /** `ctr -a SOCK -n NS ARGS…` */
  ctr(args: string[], ns?: string): Promise<RunResult>;
  pid: number;
  stop(): Promise<void>;
}

/**
 * containerd 1.6's configuration with everything under `dir`, the CRI plugin off, and
 * `proxySnapshotters` (name → socket) as proxy snapshotter plugins. The benchmark uses it too.
 */
export function containerdConfigLines(
  dir: string,
  socket: string,
  proxySnapshotters: Record<string, string>,
  /** containerd's log level (its default, info, when absent); debug logs each gRPC call with its time. */
  logLevel?: string,
): string[] {
  return [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[debug]',
    `  address = "${dir}/debug.sock"`,
    ...(logLevel ? [`  level = "${logLevel}"`] : []),
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${dir}/opt"`,
    '[proxy_plugins]',
    ...Object.entries(proxySnapshotters).flatMap(([name, address]) => [
      `  [proxy_plugins.${name}]`,
      '    type = "snapshot"',
      `    address = "${address}"`,
    ]),
    '',
  ];
}

/**
 * Start containerd with `snapshotterSocket` as its `dadi` proxy plugin. Start the snapshotter
 * first: containerd backs off for a while after a failed dial.
 */
export async function startContainerd(dir: string, snapshotterSocket: string): Promise<Containerd> {
  await mkdir(join(dir, 'root'), { recursive: true });
  await mkdir(join(dir, 'state'), { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'containerd.toml');
  await writeFile(config, containerdConfigLines(dir, socket, { dadi: snapshotterSocket }).join('\n'));
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
  });
  await waitFor(
    () => existsSync(socket),
    20_000,
    () => `containerd did not start: ${log.slice(-2000)}`,
    child,
  );
  const ctr = (args: string[], ns = 'dadi-test') => run('ctr', ['-a', socket, '-n', ns, ...args]);
  return {
    socket,
    snapshotterSocket,
    ctr,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}

export interface SnapshotterProcess {
  pid: number;
  logs(): string;
  stop(): Promise<void>;
}

/** Start `dadi snapshotter` (from source) and wait for its socket. */
export async function startSnapshotter(
  address: string,
  root: string,
  env: NodeJS.ProcessEnv,
  args: string[] = [],
): Promise<SnapshotterProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'src/cli/entry.ts'),
      'snapshotter',
      '--address',
      address,
      '--root',
      root,
      ...args,
    ],
    { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-50_000);
  });
  await waitFor(
    () => log.includes('serving'),
    30_000,
    () => `dadi snapshotter did not start: ${log}`,
    child,
  );
  return { pid: child.pid!, logs: () => log, stop: () => stopChild(child) };
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function waitFor(ok: () => boolean, ms: number, why: () => string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) await stopChild(child);
      throw new Error(why());
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Processes whose command line or environment mentions `needle` (to assert nothing of ours is left). */
export async function processesMentioning(needle: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const out: string[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    const environ = await readFile(`/proc/${p}/environ`, 'utf8').catch(() => '');
    if (cmd.includes(needle) || environ.includes(needle)) out.push(`${p} ${cmd.replaceAll('\0', ' ').slice(0, 200)}`);
  }
  return out;
}

/**
 * The end of a containerd test: stop the snapshotter, containerd and the dadi daemon of
 * `stateDir`, say which processes and mounts of ours are left under `root` (to assert there are
 * none), then remove them and `root` whatever happened.
 */
export async function stopAndScrub(
  root: string,
  stateDir: string,
  started: { snap?: SnapshotterProcess; ctrd?: Containerd },
): Promise<{ processes: string[]; mounts: string[] }> {
  const ours = async () => (await readMounts()).filter((m) => m.mountPoint.startsWith(`${root}/`));
  try {
    await started.snap?.stop();
    await started.ctrd?.stop();
    const client = await DaemonClient.connect({ stateDir, autoStart: false }).catch(() => undefined);
    await client?.shutdown();
    return { processes: await processesMentioning(root), mounts: (await ours()).map((m) => m.mountPoint) };
  } finally {
    await emergencyCleanup(stateDir, []);
    for (const m of (await ours()).reverse()) await run('umount', ['-l', m.mountPoint]);
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * A containerd test file's afterAll: fail when anything of ours is left running (containerd, its
 * shims, the snapshotter, the daemon) or mounted under `root` (stopAndScrub), then stop `servers`
 * (registries, proxies) whatever happened. A file whose beforeAll failed before making `root` only
 * stops what it started.
 */
export async function tearDownContainerd(
  started: { root?: string; stateDir?: string; snap?: SnapshotterProcess; ctrd?: Containerd },
  servers: Array<{ stop(): Promise<void> } | undefined>,
): Promise<void> {
  try {
    const { root, stateDir, ...procs } = started;
    const left = root && stateDir ? await stopAndScrub(root, stateDir, procs) : { processes: [], mounts: [] };
    if (left.processes.length > 0 || left.mounts.length > 0) {
      throw new Error(`left behind under ${root}: ${JSON.stringify(left)}`);
    }
  } finally {
    for (const s of servers) await s?.stop();
  }
}
