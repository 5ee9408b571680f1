// The cold-start contestants: each one run is timed from its first spawn until the workload's first
// line appears on stdout, with every daemon of its side started on empty state and the page cache
// dropped before the clock. Registry bytes/requests come from the delaying proxy.

import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DAEMON_V8_FLAGS, DaemonClient } from '../../src/runtime/client.js';
import type { PrivateContainerd } from './containerd.js';
import { dadiCommand, WORK } from './image.js';
import { type BenchNet, HOST_NS } from './net.js';
import { inNetns, sh, timedRun } from './util.js';

export interface Workload {
  name: string;
  /** Image tag in the layout and repository name in the registry. */
  image: string;
  cmd: string[];
  /** The stdout line that ends the clock. */
  firstLine: string;
}

export interface Sample {
  seconds: number;
  registryBytes: number;
  registryRequests: number;
  /** dadi only: bytes the kernel read from the image's block device. */
  deviceBytesRead?: number;
  /**
   * dadi only: where the time went, on the benchmark's clock: `spawn → node` (exec of nsenter and
   * node until the CLI's time origin), then the steps of `dadi run --timings` up to the first output.
   */
  steps?: { step: string; ms: number }[];
  /** dadi only: every `--timings` step the CLI printed, details (`mount: fuse`, …) included, for the run's log line. */
  timings?: { step: string; ms: number }[];
}

export interface Ctx {
  net: BenchNet;
  ctd: PrivateContainerd;
  workload: Workload;
  /** Image references in the registry, as the host sees it. */
  refs: { oci: string; dadi: string; esgz: string; dadiTrace?: string; esgzOptimized?: string };
}

export const STATE = join(WORK, 'dadi-state');
export const CACHE = join(WORK, 'dadi-cache');
const WF = join(WORK, 'waterfall');

export async function dropCaches(): Promise<void> {
  await sh('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

async function startClock(net: BenchNet): Promise<void> {
  await dropCaches();
  await net.resetStats();
}

function failed(who: string, r: { code: number; stderr: string }): Error {
  return new Error(`${who} failed (${r.code}): ${r.stderr.slice(-1500)}`);
}

// --- dadi ---

/**
 * A daemon on STATE, started if none runs, and done starting: listening, and past its warm-up of the
 * start path (runtime/warm-up.ts), which it runs only while no client asks for work, as a daemon
 * started ahead of its first container has. (The other contestants' daemons are likewise started
 * and ready before the clock; a CLI that starts the daemon itself is timed by ./scripts/demo.sh.)
 */
async function startDaemon(): Promise<DaemonClient> {
  const [node, ...args] = daemonCommand();
  const [c, a] = inNetns(HOST_NS, node!, [...args, 'daemon', '--state', STATE, '--cache-dir', CACHE]);
  const client = await DaemonClient.connect({ stateDir: STATE, daemonCommand: [c, ...a], startTimeoutMs: 60_000 });
  for (let i = 0; i < 500 && (await client.ping()).warmUp === 'running'; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return client;
}

/**
 * The daemon's command: the CLI's (bin/dadi gives `daemon` the daemon's V8 flags; node running the
 * entry is given them here), or with $DADI_BENCH_DAEMON_PROFILE=DIR the whole CLI under
 * `node --cpu-prof` writing one profile per daemon into DIR (for finding where a start's CPU goes;
 * $DADI_BENCH_DAEMON_PROFILE_US sets its sampling interval).
 */
function daemonCommand(): string[] {
  const dir = process.env.DADI_BENCH_DAEMON_PROFILE;
  const cmd = dadiCommand();
  if (!dir && cmd.length === 1) return cmd;
  const cli = cmd.length === 1 ? join(cmd[0]!, '../dadi.js') : cmd[cmd.length - 1]!;
  const prefix = cmd.length === 1 ? [] : cmd.slice(1, -1);
  // $DADI_BENCH_DAEMON_PROFILE_US: the sampling interval in µs (V8's default 1000 hides short stalls).
  const us = process.env.DADI_BENCH_DAEMON_PROFILE_US;
  const interval = us ? ['--cpu-prof-interval', us] : [];
  const profile = dir ? ['--cpu-prof', '--cpu-prof-dir', dir, ...interval] : [];
  return [process.execPath, ...DAEMON_V8_FLAGS, ...profile, ...prefix, cli];
}

export async function stopDaemon(): Promise<void> {
  const c = await DaemonClient.connect({ stateDir: STATE, autoStart: false }).catch(() => undefined);
  if (c) await c.shutdown();
}

/**
 * `dadi run --rm --timings --json`: cold = a new daemon with an empty block cache; warm = the cache
 * kept. `trace`: replay the image's acceleration layer; otherwise `--no-trace` (neither that nor
 * auto-trace, which would record on the first cold run and replay on the next).
 */
export async function dadiRun(x: Ctx, ref: string, opts: { cold: boolean; trace: boolean }): Promise<Sample> {
  if (opts.cold) {
    await stopDaemon();
    await rm(CACHE, { recursive: true, force: true });
    await rm(join(STATE, 'traces'), { recursive: true, force: true });
  }
  const client = await startDaemon();
  await startClock(x.net);
  // The device's read counter, sampled from the first output until the device goes away (--rm):
  // not before, so that the timed part runs without the extra requests to the daemon.
  let deviceBytesRead: number | undefined;
  let polling: Promise<void> | undefined;
  let done = false;
  const poll = async () => {
    while (!done) {
      const devs = await client.ps().catch(() => []);
      for (const d of devs) deviceBytesRead = Math.max(deviceBytesRead ?? 0, d.bytesRead);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const [node, ...args] = dadiCommand();
  const r = await timedRun(
    node!,
    [
      ...args,
      'run',
      '--rm',
      '--timings',
      '--json',
      ...(opts.trace ? [] : ['--no-trace']),
      '--state',
      STATE,
      ref,
      '--',
      ...x.workload.cmd,
    ],
    x.workload.firstLine,
    { netns: HOST_NS, onFirstOutput: () => (polling = poll()) },
  ).finally(async () => {
    done = true;
    await polling;
  });
  if (r.code !== 0 || r.firstOutputS === undefined) throw failed('dadi run', r);
  const s = await x.net.stats();
  return {
    seconds: r.firstOutputS,
    registryBytes: s.responseBodyBytes,
    registryRequests: s.requests,
    deviceBytesRead,
    steps: stepsToFirstOutput(r.stderr, r.firstOutputS),
    timings: cliTimings(r.stderr),
  };
}

/** The CLI's `--timings --json` line, all of it. */
function cliTimings(stderr: string): { step: string; ms: number }[] | undefined {
  const line = stderr.split('\n').find((l) => l.startsWith('{"timings"'));
  return line ? (JSON.parse(line) as { timings: { step: string; ms: number }[] }).timings : undefined;
}

/**
 * The CLI's own steps (from its process start) up to the first output, preceded by what the CLI
 * cannot see: spawn → its time origin, the remainder of the benchmark's first-output time.
 */
function stepsToFirstOutput(stderr: string, firstOutputS: number): Sample['steps'] {
  const line = stderr.split('\n').find((l) => l.startsWith('{"timings"'));
  if (!line) return undefined;
  const all = (JSON.parse(line) as { timings: { step: string; ms: number }[] }).timings;
  const steps: { step: string; ms: number }[] = [];
  for (const s of all) {
    if (s.step.includes(': ')) continue; // details of the step before, not part of the sum
    steps.push(s);
    if (s.step === 'runc to first output') break;
  }
  const cli = steps.reduce((a, s) => a + s.ms, 0);
  return [{ step: 'spawn → node', ms: Math.round(firstOutputS * 1000 - cli) }, ...steps];
}

// --- containerd ---

/** containerd + stargz: `ctr-remote image rpull` then `ctr run --snapshotter stargz`. */
export async function stargz(x: Ctx, i: number): Promise<Sample> {
  return containerdRun(x, i, x.refs.esgz, 'stargz', ['image', 'rpull', '--plain-http', x.refs.esgz], 'ctr-remote');
}

/**
 * containerd + stargz on the image `ctr-remote image optimize` made for this workload: the same
 * snapshotter and commands, which prefetch the files the recorded run read (stargz's trace).
 */
export async function stargzOptimized(x: Ctx, i: number): Promise<Sample> {
  const ref = x.refs.esgzOptimized!;
  return containerdRun(x, i, ref, 'stargz', ['image', 'rpull', '--plain-http', ref], 'ctr-remote');
}

/** containerd, conventional: `ctr images pull` (download + unpack) then `ctr run` on overlayfs. */
export async function containerdPull(x: Ctx, i: number): Promise<Sample> {
  return containerdRun(x, i, x.refs.oci, 'overlayfs', ['images', 'pull', '--plain-http', x.refs.oci], 'ctr');
}

async function containerdRun(
  x: Ctx,
  i: number,
  ref: string,
  snapshotter: string,
  pull: string[],
  pullTool: string,
): Promise<Sample> {
  await x.ctd.start();
  const id = `bench-${process.pid}-${i}`;
  try {
    await startClock(x.net);
    const t0 = performance.now();
    const [pc, pa] = x.ctd.ctr(pull, pullTool);
    await sh(pc, pa);
    const pullMs = performance.now() - t0;
    const [c, a] = x.ctd.ctr(['run', '--rm', '--snapshotter', snapshotter, ref, id, ...x.workload.cmd]);
    const r = await timedRun(c, a, x.workload.firstLine, { t0 });
    if (r.code !== 0 || r.firstOutputS === undefined) throw failed(`ctr run --snapshotter ${snapshotter}`, r);
    const s = await x.net.stats();
    // The same split as the dadi snapshotter's: the pull from spawn to exit, then `ctr run`.
    const steps = [
      { step: `${pull.slice(0, 2).join(' ')}`, ms: Math.round(pullMs) },
      { step: 'ctr run to first output', ms: Math.round(r.firstOutputS * 1000 - pullMs) },
    ];
    return { seconds: r.firstOutputS, registryBytes: s.responseBodyBytes, registryRequests: s.requests, steps };
  } finally {
    await x.ctd.stop();
  }
}

/**
 * containerd + the dadi snapshotter (issue #12), on the same containerd as stargz: `dadi pull
 * --containerd-address` (performed by the snapshotter, the CLI its client) then `ctr run --snapshotter dadi`. The dadi daemon (the snapshotter's device
 * owner) starts anew with an empty block cache, like stargz's snapshotter.
 */
export async function dadiSnapshotter(x: Ctx, i: number): Promise<Sample> {
  await stopDaemon();
  await rm(CACHE, { recursive: true, force: true });
  await rm(join(STATE, 'traces'), { recursive: true, force: true });
  await startDaemon();
  const dadi = dadiCommand();
  await x.ctd.start([...dadi, 'snapshotter', '--state', STATE]);
  const id = `bench-${process.pid}-${i}`;
  try {
    await startClock(x.net);
    const t0 = performance.now();
    const pull = await sh(
      dadi[0]!,
      [
        ...dadi.slice(1),
        'pull',
        '--containerd-address',
        x.ctd.sock,
        // The running snapshotter performs the pull (the CLI sends the request).
        '--snapshotter-address',
        x.ctd.dadiSock,
        '-n',
        'bench',
        '--timings',
        '--json',
        x.refs.dadi,
      ],
      { netns: HOST_NS, env: { ...process.env, HOME: WORK } },
    );
    const pullMs = performance.now() - t0;
    const [c, a] = x.ctd.ctr(['run', '--rm', '--snapshotter', 'dadi', x.refs.dadi, id, ...x.workload.cmd]);
    const r = await timedRun(c, a, x.workload.firstLine, { t0 });
    if (r.code !== 0 || r.firstOutputS === undefined) throw failed('ctr run --snapshotter dadi', r);
    const s = await x.net.stats();
    const pulled = (JSON.parse(pull.stdout) as { steps?: { step: string; ms: number }[] }).steps ?? [];
    const inCli = pulled.reduce((n, p) => n + p.ms, 0);
    const steps = [
      { step: 'pull: spawn, exit', ms: Math.round(pullMs - inCli) },
      ...pulled.map((p) => ({ step: `pull: ${p.step}`, ms: p.ms })),
      { step: 'ctr run to first output', ms: Math.round(r.firstOutputS * 1000 - pullMs) },
    ];
    return { seconds: r.firstOutputS, registryBytes: s.responseBodyBytes, registryRequests: s.requests, steps };
  } finally {
    await x.ctd.stop();
  }
}

// --- the waterfall ---

/** skopeo copy docker://→oci layout, umoci unpack, runc run. */
export async function waterfall(x: Ctx, i: number): Promise<Sample> {
  await rm(WF, { recursive: true, force: true });
  await mkdir(WF, { recursive: true });
  const layout = join(WF, 'layout');
  const bundle = join(WF, 'bundle');
  const id = `dadi-bench-wf-${process.pid}-${i}`;
  try {
    await startClock(x.net);
    const t0 = performance.now();
    await sh('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${x.refs.oci}`, `oci:${layout}:app`], {
      netns: HOST_NS,
    });
    await sh('umoci', ['unpack', '--image', `${layout}:app`, bundle]);
    const cfgPath = join(bundle, 'config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    cfg.process.terminal = false;
    cfg.process.args = x.workload.cmd;
    await writeFile(cfgPath, JSON.stringify(cfg));
    const r = await timedRun(
      'runc',
      ['--root', join(WF, 'runc'), 'run', '--bundle', bundle, id],
      x.workload.firstLine,
      {
        netns: HOST_NS,
        t0,
      },
    );
    if (r.code !== 0 || r.firstOutputS === undefined) throw failed('waterfall: runc run', r);
    const s = await x.net.stats();
    return { seconds: r.firstOutputS, registryBytes: s.responseBodyBytes, registryRequests: s.requests };
  } finally {
    await sh('runc', ['--root', join(WF, 'runc'), 'delete', '--force', id], { allowFail: true });
    await rm(WF, { recursive: true, force: true });
  }
}

export async function cleanupWaterfall(): Promise<void> {
  await rm(WF, { recursive: true, force: true });
}
