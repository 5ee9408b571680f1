// Containers: mount an image through the daemon with a per-container writable block layer (the
// DADI way; `rootfsMode: 'block'`) or read-only + overlayfs (`'overlay'`), build a runc bundle
// from the image config, run it with runc in this process (output streamed), clean up on every
// path. Without `rm` the container's record (`<state>/containers/<name>.json`) and its writable
// layer stay, so `commitContainerLayer` can turn the layer into a new image layer.
// Not the image resolution (refs → layers: the CLI/image side) nor the push of a committed layer.
//
// @example
//   const { exitCode } = await runContainer({ layers: ['/l/base.tar'], config, cmd: ['sh', '-c', 'echo hi'], rm: true });

import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Sink } from '../blockfile/index.js';
import { DadiError } from '../errors.js';
import { unmountFilesystem } from '../export/loop.js';
import { readMounts, runProgram } from '../export/system.js';
import type { CommitResult } from '../format/lsmt/index.js';
import type { StepTimer } from '../util/step-timer.js';
import { buildSpec, type ImageRunConfig, launchFiles, writeBundle } from './bundle.js';
import { type ClientOptions, DaemonClient } from './client.js';
import { type LayerSpec, normalizeLayerSpec } from './layer-spec.js';
import type { DeviceTraceInfo, MountTraceRequest } from './protocol.js';
import { type PreparedRuncRun, prepareRuncRun, removeCgroup, runcDelete, runcKill } from './runc.js';
import { checkName, statePaths } from './state.js';

export type RootfsMode = 'block' | 'overlay';

export interface RunContainerOptions {
  /** Image layers, bottom first (local layer paths or layer specs for the daemon's resolver). */
  layers: (string | LayerSpec)[];
  /** The image config (whole blob, or just its `config` object). */
  config?: { config?: ImageRunConfig } | ImageRunConfig;
  /** Replaces the image's Cmd. */
  cmd?: string[];
  entrypoint?: string[];
  env?: string[];
  user?: string;
  workingDir?: string;
  hostname?: string;
  /** Default: a random `c-xxxxxxxx`. */
  name?: string;
  /** Remove everything (writable layer included) when the container exits. */
  rm?: boolean;
  /** Default 'block'. */
  rootfsMode?: RootfsMode;
  readonlyRootfs?: boolean;
  /** Recorded for `commit` (e.g. the image reference). */
  imageRef?: string;
  stateDir?: string;
  /** Daemon client options (the client auto-starts the daemon). */
  client?: Omit<ClientOptions, 'stateDir'>;
  /** The container, made beforehand by createContainer (default: made here, named `name`). */
  created?: Promise<ContainerRecord>;
  /** A client already connected to the state folder's daemon (saves a connect round trip). */
  daemon?: DaemonClient;
  /** Default: this process's stdout/stderr. */
  stdout?: Writable;
  stderr?: Writable;
  /**
   * Forward SIGINT/SIGTERM/SIGHUP of this process to the container as SIGTERM, then SIGKILL after
   * `killGraceMs` (or at the second signal); cleanup still runs. Default true.
   */
  handleSignals?: boolean;
  killGraceMs?: number;
  /**
   * Time the steps (daemon connect, mount with the daemon's own steps, bundle, runc until the first
   * output, the rest of the run, cleanup). Output is then piped through this process to see it.
   */
  timer?: StepTimer;
  /** Stop the container when this aborts: SIGTERM, then SIGKILL after `killGraceMs`. */
  stop?: AbortSignal;
  /** Trace prefetch of the image's device (replay or record). */
  trace?: MountTraceRequest;
}

export interface ContainerRecord {
  name: string;
  createdAt: string;
  status: 'created' | 'running' | 'exited';
  exitCode?: number;
  rootfsMode: RootfsMode;
  layers: LayerSpec[];
  imageRef?: string;
  image?: ImageRunConfig;
  dir: string;
  rootfs: string;
  /** Block mode: the writable layer's files (kept after exit without --rm). */
  writable?: { data: string; index: string };
  /** Overlay mode: the read-only image mount and the overlay's upper/work folders. */
  overlay?: { lower: string; upper: string; work: string };
  /** The daemon device while mounted. */
  deviceId?: string;
  cgroupsPath: string;
  runcRoot: string;
}

export interface ContainerExit {
  name: string;
  exitCode: number;
  /** A signal of this process stopped the container. */
  interrupted: boolean;
  /** The record left behind (undefined with `rm`). */
  record?: ContainerRecord;
  /** What the device's trace prefetch did (replay counters, reads recorded). */
  trace?: DeviceTraceInfo;
}

function runConfigOf(c: RunContainerOptions['config']): ImageRunConfig | undefined {
  if (!c) return undefined;
  if ('rootfs' in c || ('config' in c && typeof c.config === 'object' && c.config !== null)) {
    return (c as { config?: ImageRunConfig }).config;
  }
  return c as ImageRunConfig;
}

function recordPath(stateDir: string | undefined, name: string): string {
  return join(statePaths(stateDir).containers, `${checkName(name)}.json`);
}

async function saveRecord(stateDir: string | undefined, rec: ContainerRecord, exclusive = false): Promise<void> {
  await writeFile(recordPath(stateDir, rec.name), `${JSON.stringify(rec, null, 2)}\n`, {
    flag: exclusive ? 'wx' : 'w',
  }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EEXIST') throw new DadiError('EEXIST', `container ${rec.name} already exists`);
    throw e;
  });
}

/** Read a container's record. */
export async function readContainer(name: string, opts: { stateDir?: string } = {}): Promise<ContainerRecord> {
  const p = recordPath(opts.stateDir, name);
  const text = await readFile(p, 'utf8').catch(() => {
    throw new DadiError('ENOTFOUND', `no container named ${name} (${p})`);
  });
  return JSON.parse(text) as ContainerRecord;
}

/** Every container record of the state folder. */
export async function listContainers(opts: { stateDir?: string } = {}): Promise<ContainerRecord[]> {
  const dir = statePaths(opts.stateDir).containers;
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const out: ContainerRecord[] = [];
  for (const n of names.sort()) out.push(await readContainer(n.slice(0, -5), opts));
  return out;
}

/**
 * `c-` and 8 hex digits. Not from node:crypto, whose first use costs `dadi run` ~10 ms of its start:
 * a name need not be unpredictable, and a taken one is refused (saveRecord), never reused.
 */
function randomName(): string {
  return `c-${Math.floor(Math.random() * 2 ** 32)
    .toString(16)
    .padStart(8, '0')}`;
}

/**
 * Reserve a container: its name (the record, written exclusively; no image yet) and its folders.
 * `dadi run` does this while the daemon resolves the image, then hands it to runContainer.
 */
export async function createContainer(
  opts: Pick<RunContainerOptions, 'name' | 'rootfsMode' | 'stateDir'>,
): Promise<ContainerRecord> {
  const paths = statePaths(opts.stateDir);
  const name = checkName(opts.name ?? randomName());
  const mode: RootfsMode = opts.rootfsMode ?? 'block';
  const dir = join(paths.containers, name);
  await mkdir(paths.containers, { recursive: true, mode: 0o700 });
  const rec: ContainerRecord = {
    name,
    createdAt: new Date().toISOString(),
    status: 'created',
    rootfsMode: mode,
    layers: [],
    dir,
    rootfs: join(dir, 'rootfs'),
    writable: mode === 'block' ? { data: join(dir, 'layer.data'), index: join(dir, 'layer.index') } : undefined,
    overlay:
      mode === 'overlay'
        ? { lower: join(dir, 'lower'), upper: join(dir, 'upper'), work: join(dir, 'work') }
        : undefined,
    cgroupsPath: `/dadi/${name}`,
    runcRoot: paths.runc,
  };
  await saveRecord(paths.root, rec, true);
  try {
    await Promise.all([rec.rootfs, join(dir, 'bundle')].map((d) => mkdir(d, { recursive: true })));
  } catch (e) {
    await removeFiles(rec, paths.root).catch(() => {});
    throw e;
  }
  return rec;
}

/** Remove a container createContainer made that will not run (its image could not be resolved). */
export async function discardContainer(created: Promise<ContainerRecord>, opts: { stateDir?: string } = {}) {
  const rec = await created.catch(() => undefined);
  if (rec) await removeFiles(rec, statePaths(opts.stateDir).root);
}

/** Run a container to completion and return its exit code. */
export async function runContainer(opts: RunContainerOptions): Promise<ContainerExit> {
  const paths = statePaths(opts.stateDir);
  const stateDir = paths.root;
  const rec = await (opts.created ?? createContainer(opts));
  const { name, dir } = rec;
  const mode = rec.rootfsMode;
  rec.layers = opts.layers.map((l) => normalizeLayerSpec(l));
  rec.imageRef = opts.imageRef;
  rec.image = runConfigOf(opts.config);

  let interrupted = false;
  let started = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onSignal = () => {
    const again = interrupted;
    interrupted = true;
    if (!started) return;
    void runcKill(paths.runc, name, again ? 'KILL' : 'TERM');
    if (!again) killTimer ??= setTimeout(() => void runcKill(paths.runc, name, 'KILL'), opts.killGraceMs ?? 5_000);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  if (opts.handleSignals !== false) for (const s of signals) process.on(s, onSignal);
  // Stopping on request works like a signal: TERM now, KILL after the grace period.
  opts.stop?.addEventListener('abort', onSignal, { once: true });

  let exitCode = 128;
  let failure: unknown;
  let runc: PreparedRuncRun | undefined;
  try {
    const timer = opts.timer;
    const bundle = join(dir, 'bundle');
    let seen = false;
    // runc's process is forked while the daemon mounts (once the mount request is sent, so that
    // the fork does not delay it) and told to start once the bundle is written.
    const forkRunc = () => {
      runc ??= prepareRuncRun({
        root: paths.runc,
        bundle,
        id: name,
        stdout: opts.stdout ?? (timer ? process.stdout : undefined),
        stderr: opts.stderr ?? (timer ? process.stderr : undefined),
        onFirstOutput: () => {
          seen = true;
          timer?.lap('runc to first output');
        },
      });
    };
    const client = opts.daemon ?? (await DaemonClient.connect({ ...opts.client, stateDir }));
    timer?.lap(opts.daemon ? 'container record' : 'container record, daemon connect');
    const launch = launchFiles({
      image: rec.image,
      cmd: opts.cmd,
      entrypoint: opts.entrypoint,
      env: opts.env,
      workingDir: opts.workingDir,
    });
    if (mode === 'block') {
      const dev = await client.mount(
        {
          layers: rec.layers,
          target: rec.rootfs,
          rw: true,
          writable: rec.writable,
          discardable: !!opts.rm,
          label: name,
          trace: opts.trace,
          launch,
        },
        forkRunc,
      );
      rec.deviceId = dev.id;
      timer?.lap('mount');
      timer?.detail('mount', dev.timings);
    } else {
      const o = rec.overlay!;
      await Promise.all([o.lower, o.upper, o.work].map((d) => mkdir(d, { recursive: true })));
      const dev = await client.mount(
        {
          layers: rec.layers,
          target: o.lower,
          rw: false,
          label: name,
          trace: opts.trace,
          launch,
        },
        forkRunc,
      );
      rec.deviceId = dev.id;
      const r = await runProgram(
        'mount',
        ['-t', 'overlay', 'overlay', '-o', `lowerdir=${o.lower},upperdir=${o.upper},workdir=${o.work}`, rec.rootfs],
        { timeoutMs: 60_000 },
      );
      if (r.code !== 0) throw new DadiError('EIO', `container ${name}: overlay mount failed: ${r.stderr.trim()}`);
      timer?.lap('mount');
      timer?.detail('mount', dev.timings);
    }
    rec.status = 'running';
    // Settled both, so that no record write is still in flight when a failure's cleanup starts.
    const [spec] = await allSettled([
      buildSpec({
        rootfs: rec.rootfs,
        image: rec.image,
        cmd: opts.cmd,
        entrypoint: opts.entrypoint,
        env: opts.env,
        user: opts.user,
        workingDir: opts.workingDir,
        hostname: opts.hostname ?? name,
        readonlyRootfs: opts.readonlyRootfs,
        cgroupsPath: rec.cgroupsPath,
      }),
      saveRecord(stateDir, rec),
    ]);
    await writeBundle(bundle, spec, { dirMade: true });
    timer?.lap('bundle');
    if (!interrupted) {
      started = true;
      forkRunc();
      const run = runc!;
      runc = undefined;
      exitCode = await run.start();
      timer?.lap(seen ? 'rest of the run' : 'runc run (no output)');
    }
  } catch (e) {
    failure = e;
  } finally {
    started = false;
    // Never started: the waiting shell exits without running runc.
    await runc?.cancel();
    if (killTimer) clearTimeout(killTimer);
    if (opts.handleSignals !== false) for (const s of signals) process.off(s, onSignal);
    opts.stop?.removeEventListener('abort', onSignal);
  }
  let trace: DeviceTraceInfo | undefined;
  try {
    trace = await stopContainer(rec, stateDir);
    rec.status = 'exited';
    rec.exitCode = failure ? undefined : exitCode;
    if (opts.rm) await removeFiles(rec, stateDir);
    else await saveRecord(stateDir, rec);
  } catch (e) {
    failure ??= e;
  }
  opts.timer?.lap('cleanup');
  if (failure) throw failure;
  return { name, exitCode, interrupted, record: opts.rm ? undefined : rec, trace };
}

/** Like Promise.all, but waits for every promise before throwing the first failure. */
async function allSettled<T extends readonly unknown[]>(ps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const r = await Promise.allSettled(ps);
  const failed = r.find((x) => x.status === 'rejected');
  if (failed) throw failed.reason;
  return r.map((x) => (x as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** runc delete, cgroup folders, overlay, daemon device: each step even if another failed. */
async function stopContainer(rec: ContainerRecord, stateDir: string): Promise<DeviceTraceInfo | undefined> {
  let first: unknown;
  let trace: DeviceTraceInfo | undefined;
  const step = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      first ??= e;
    }
  };
  await step(() => runcDelete(rec.runcRoot, rec.name));
  await step(async () => {
    const left = await removeCgroup(rec.cgroupsPath);
    if (left.length) throw new DadiError('EIO', `container ${rec.name}: cgroup folders still busy: ${left.join(', ')}`);
  });
  if (rec.overlay) await step(() => unmountFilesystem(rec.rootfs, { lazy: true }));
  if (rec.deviceId) {
    await step(async () => {
      const client = await DaemonClient.connect({ stateDir, autoStart: false }).catch(() => undefined);
      // No daemon: its devices died with it (the next daemon scrubs the leftovers).
      if (!client) return;
      // One round trip: a device the daemon no longer has is already gone.
      trace = await client
        .umount(rec.deviceId!)
        .then((r) => r.trace)
        .catch((e) => {
          if (!(e instanceof DadiError && e.code === 'ENOTFOUND')) throw e;
          return undefined;
        });
    });
    rec.deviceId = undefined;
  }
  if (first) throw first;
  return trace;
}

async function removeFiles(rec: ContainerRecord, stateDir: string): Promise<void> {
  const busy = (await readMounts()).filter((m) => m.mountPoint === rec.dir || m.mountPoint.startsWith(`${rec.dir}/`));
  if (busy.length) {
    throw new DadiError('EIO', `container ${rec.name}: still mounted: ${busy.map((m) => m.mountPoint).join(', ')}`);
  }
  await rm(rec.dir, { recursive: true, force: true });
  await rm(recordPath(stateDir, rec.name), { force: true });
}

/** Stop (if needed) and delete a container: runc state, cgroups, mounts, writable layer, record. */
export async function removeContainer(name: string, opts: { stateDir?: string } = {}): Promise<void> {
  const stateDir = statePaths(opts.stateDir).root;
  const rec = await readContainer(name, { stateDir });
  await stopContainer(rec, stateDir);
  await removeFiles(rec, stateDir);
}

export interface CommitContainerOptions {
  stateDir?: string;
  /** uuid of the new layer (default: a random one). */
  uuid?: string;
  /** Commit message stored in the layer header (at most 256 bytes). */
  userTag?: string;
}

/**
 * Commit a stopped block-mode container's writable layer as a new sealed layer into `sink`
 * (stack ZFile/tar sinks with image/layer-output.ts). Its parent uuid is the image's top layer's.
 *
 * @example
 *   await commitContainerLayer('c1', await openLayerOutput('new.tar', { zfile: {}, tar: true }));
 */
export async function commitContainerLayer(
  name: string,
  sink: Sink,
  opts: CommitContainerOptions = {},
): Promise<CommitResult> {
  const rec = await readContainer(name, opts);
  if (rec.rootfsMode !== 'block' || !rec.writable) {
    throw new DadiError(
      'EUNSUPPORTED',
      `container ${name}: only block-mode containers can be committed (${rec.rootfsMode})`,
    );
  }
  if (rec.status === 'running' || rec.deviceId) {
    throw new DadiError('EINVAL', `container ${name} is running; commit it after it exits`);
  }
  // Loaded here, not up front: `dadi run` imports this module and never needs the format code.
  const { openWritableLayer } = await import('../image/writable.js');
  const { randomUuid } = await import('../format/lsmt/index.js');
  const layer = await openWritableLayer(rec.writable, { readOnly: true });
  try {
    return await layer.commit(sink, { uuid: opts.uuid ?? randomUuid(), userTag: opts.userTag });
  } finally {
    await layer.close();
  }
}
