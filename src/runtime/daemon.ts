// The host daemon (`dadi daemon`): ONE long-running process that owns the devices — open layer
// stacks, writable layers, FUSE exports, loop devices, ext4 mounts — so that they outlive CLI
// invocations, and (through its remote context) the host's block cache. It answers the JSON-lines
// protocol of protocol.ts on `<state>/dadi.sock`. The stacks come from src/image; cleaning up after
// a dead daemon is export/scrub.ts.
// Not the container runner: runc runs in the CLI process (container.ts) so its output streams
// straight to the user; the daemon only mounts and unmounts.
//
// THREADPOOL: every FUSE export keeps `readers` reads pending on /dev/fuse, each pinning a libuv
// thread, so the process must start with a big UV_THREADPOOL_SIZE (the client spawns it with 128);
// mount() refuses a device that would exhaust the pool instead of deadlocking.
//
// @example
//   // the CLI's `dadi daemon` command:
//   await runDaemonForeground({ stateDir: '/run/dadi' });

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WritableBlockFile } from '../blockfile/index.js';
import { DadiError } from '../errors.js';
import {
  type BlockMount,
  findMount,
  forceUnmountFuse,
  mountBlockFile,
  scrubDevices,
  unmountFilesystem,
} from '../export/index.js';
import { ReadThrough } from '../export/read-through.js';
import { ComboDevice, type LayerStack } from '../format/lsmt/index.js';
import { cacheReport } from '../image/host-cache.js';
import { type OpenedLayerBlob, openLayerBlob } from '../image/layer-blob.js';
import { type OpenedLayerStack, openLayerStack } from '../image/layer-stack.js';
import type { RemoteContext } from '../image/remote-context.js';
import { prepareWritableDevice } from '../image/writable.js';
import { type Logger, RootLogger } from '../log/logger.js';
import { type Ext4PrefetchOptions, LAUNCH_FILE_BYTES } from '../prefetch/ext4-prefetch.js';
import type { LaunchFiles } from '../prefetch/launch-files.js';
import { LayerPull, type PullTarget } from '../prefetch/layer-pull.js';
import { type LayerPullConfig, RateLimiter } from '../prefetch/layer-pull-plan.js';
import type { TraceRecord } from '../prefetch/trace-format.js';
import { type BlobRange, decodeBlobRanges } from '../prefetch/trace-ranges.js';
import { TraceStore } from '../prefetch/trace-store.js';
import { parseReference } from '../registry/reference.js';
import { formatSteps, StepTimer, type TimedStep } from '../util/step-timer.js';
import { listContainers } from './container.js';
import { DaemonMetrics } from './daemon-metrics.js';
import { type DeviceTrace, loadAccelerationTrace, prepareDeviceTrace } from './device-trace.js';
import { browseForClient, exportForClient } from './image-reads.js';
import { type LayerSpec, layerBlobSourceOf, normalizeLayerSpec } from './layer-source.js';
import { daemonLockKey, ProcessLock } from './lock.js';
import { type MetricsAddress, type MetricsServer, serveMetrics } from './metrics-server.js';
import { type FaultKind, installFaultPolicy } from './process-faults.js';
import {
  type DeviceInfo,
  type DeviceTraceInfo,
  MAX_LAUNCH_ARG_LENGTH,
  MAX_LAUNCH_ARGS,
  type MountRequest,
  type PingResult,
  PROTOCOL_VERSION,
  type Request,
  type Response,
} from './protocol.js';
import { runcKill, runcList } from './runc.js';
import { socketAnswers } from './socket.js';
import { statePaths } from './state.js';
import { type DaemonStatus, daemonStatus, type ErrorKind, errorKey } from './status.js';

export interface DaemonOptions {
  stateDir?: string;
  /** The registry client and block cache for registry layers (asked on first use). Default: local files only. */
  remote?: () => Promise<RemoteContext>;
  /** FUSE reader loops per device (default 4). */
  readers?: number;
  /** Default: info and above, JSON lines on stderr. */
  logger?: Logger;
  /** The block cache directory `remote` uses (reported by ping, so clients can hand their reads over). */
  cacheDir?: string;
  /** Resolve an image reference for `run`/`mount` clients (manifest layers, config). */
  resolveImage?: (ref: string, platform: string | undefined, hooks: ResolveHooks) => Promise<object>;
  /** What SIGHUP may change while the daemon runs (DaemonSettings). */
  settings?: Partial<DaemonSettings>;
  /** The daemon's metrics (made earlier when the registry client must report to them; default: its own). */
  metrics?: DaemonMetrics;
  /** Serve Prometheus metrics at http://ADDRESS/metrics (default: off). */
  metricsAddress?: MetricsAddress;
}

/** What the daemon gives an image resolution. */
export interface ResolveHooks {
  /** Laps each step (they are answered with the resolution, as `timings`). */
  timer: StepTimer;
  /**
   * The image's layers, once known: the daemon starts opening them for the mount that follows (and
   * fetching the acceleration layer's trace, when the client will replay it).
   */
  layersKnown(specs: LayerSpec[], accelerationLayer?: LayerSpec): void;
}

/** The daemon's settings that a reload (SIGHUP) applies; devices mounted before keep theirs. */
export interface DaemonSettings {
  /** Pull each mounted device's registry layers wholly into the cache in the background (default: off). */
  backgroundPull?: LayerPullConfig;
  /** Trace replay reads in flight when a mount request names no count (default 16). */
  replayWorkers?: number;
  /**
   * Ext4 metadata prefetch and file readahead of a device that replays no trace (image/layer-stack.ts
   * `ext4Prefetch`; undefined: off). Whether the mount is read-write is the request's.
   */
  ext4Prefetch?: Omit<Ext4PrefetchOptions, 'writableMount' | 'log'>;
  /**
   * SIGTERM, once requests in flight are done: 'unmount' stops the containers on the devices and
   * unmounts everything; 'wait' keeps serving (no new mounts) until their users released every device.
   */
  onStop: 'unmount' | 'wait';
  /** How long SIGTERM waits for requests in flight (and stopped containers' clean-up) before tearing down. */
  drainTimeoutMs: number;
}

/** Layers opened for a mount that never came are closed after this long. */
const UNCLAIMED_EARLY_OPEN_MS = 30_000;
/** Blob ranges of a trace's replay fetched with the layers' indexes (the first ones, in recorded order). */
const EARLY_BLOB_RANGES = 4;

/** A stopped container gets this long after SIGTERM before SIGKILL. */
const CONTAINER_KILL_GRACE_MS = 5_000;

interface Device {
  id: string;
  target: string;
  dir: string;
  rw: boolean;
  label?: string;
  layers: Array<{ spec: LayerSpec; blob: OpenedLayerBlob }>;
  file: LayerStack | ComboDevice;
  stack: OpenedLayerStack;
  trace?: DeviceTrace;
  writable?: { data: string; index: string; ephemeral: boolean };
  mount: BlockMount;
  /** The background pull of its registry layers, stopped before the layers close. */
  pull?: LayerPull;
  /** Launch files read through the mount once fetched (LaunchRequest.readThrough), stopped before the umount. */
  readThrough?: ReadThrough;
  /** Where the mount's time went (open layers, writable layer, FUSE, loop, filesystem). */
  timings: TimedStep[];
  createdAt: string;
}

const MAX_REQUEST_BYTES = 1 << 20;

/** Ops counted by name in the request metrics (anything else counts as `unknown`: labels stay few). */
const KNOWN_OPS = new Set<string>([
  'ping',
  'mount',
  'umount',
  'ps',
  'resolve',
  'cache',
  'status',
  'browse',
  'export',
  'shutdown',
] satisfies Request['op'][]);

/** New work a draining daemon refuses; ps, umount, status and the rest still answer. */
const REFUSED_WHILE_DRAINING = new Set<string>([
  'mount',
  'resolve',
  'open',
  'browse',
  'export',
] satisfies Request['op'][]);
/**
 * Requests that ask the daemon for no work: a client checking on it, or the hint that a start is
 * coming (its registry connection opens; the start's first request follows while its CLI loads).
 * The warm-up goes on through them.
 */
const IDLE_OPS = new Set<string>(['ping', 'ps', 'status', 'preconnect'] satisfies Request['op'][]);
/** Bound on the layers one `open` request may name (an image has at most a few hundred). */
const MAX_OPEN_LAYERS = 256;

/** What a request may stream back, and whether its client is still there. */
export interface RequestIo {
  /** Send bytes ahead of the answer (data frames, protocol.ts). */
  write?: (chunk: Uint8Array) => Promise<void>;
  /** Aborted when the client's connection closes. */
  signal?: AbortSignal;
}

export class Daemon {
  readonly paths: ReturnType<typeof statePaths>;
  /** Resolves once shutdown() has torn everything down. */
  readonly stopped: Promise<void>;
  private readonly devices = new Map<string, Device>();
  private readonly readers: number;
  readonly logger: Logger;
  private settings: DaemonSettings;
  private server: Server | undefined;
  /** Open client connections, and how many of them wait for an answer. */
  private readonly sockets = new Set<Socket>();
  private inflight = 0;
  /** Set by SIGTERM: no new work is taken; a second SIGTERM tears down at once. */
  private draining = false;
  private lock: ProcessLock | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private resolveStopped!: () => void;
  /** One rate for every background pull of this host. */
  private pullLimiter: RateLimiter | undefined;
  /** Acceleration layers' traces fetched ahead of their mount (fetchTraceEarly), by spec ref. */
  private readonly earlyTraces = new Map<string, Promise<TraceRecord[] | undefined>>();
  /** Registry layers opened ahead of their mount (openEarly), by spec ref. */
  private readonly opening = new Map<string, Promise<OpenedLayerBlob | undefined>>();
  /** Blobs a pull verified in this daemon's life (pulled again only if the cache lost some of them). */
  private readonly pulled = new Set<string>();
  readonly metrics: DaemonMetrics;
  private metricsServer: MetricsServer | undefined;
  private readonly startedAt = new Date();
  private readonly requestsInFlight = new Map<string, number>();
  private readonly requestsTotal = new Map<string, number>();
  /** Errors counted here (`kind code` → n); the cache's own are read from its counters. */
  private readonly errors = new Map<string, number>();
  /** The remote context once opened (status reports it without opening it). */
  private remoteOpened: RemoteContext | undefined;
  /** Aborted by the first request asking for work, or by stopping (workArrived). */
  private readonly work = new AbortController();
  /** Where the warm-up is (answered by ping, for a client that waits until it is over). */
  warmUp: PingResult['warmUp'];

  private constructor(private readonly opts: DaemonOptions) {
    this.paths = statePaths(opts.stateDir);
    this.readers = opts.readers ?? 4;
    this.logger = opts.logger ?? RootLogger.create({ level: 'info', path: '' }, 'daemon');
    this.settings = { onStop: 'unmount', drainTimeoutMs: 30_000, ...opts.settings };
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    this.metrics = opts.metrics ?? new DaemonMetrics();
    this.metrics.setSource(() => this.figures());
  }

  /**
   * Take over the state folder (refusing if another daemon answers on its socket), clean up what a
   * dead daemon left behind (mounts, loop devices, FUSE mounts under the state folder), listen.
   */
  static async start(opts: DaemonOptions = {}): Promise<Daemon> {
    const d = new Daemon(opts);
    const p = d.paths;
    await mkdir(p.root, { recursive: true, mode: 0o700 });
    await mkdir(p.devices, { recursive: true });
    // Held for the daemon's whole life: a second daemon racing for this folder stops here, before
    // it could scrub the first one's devices or replace its socket.
    const lock = await ProcessLock.tryAcquire(daemonLockKey(p.root));
    if (!lock || (await socketAnswers(p.socket))) {
      await lock?.release();
      throw new DadiError('EEXIST', `a dadi daemon already runs on ${p.socket}`);
    }
    d.lock = lock;
    try {
      await unlink(p.socket).catch(() => {});
      const scrubbed = await scrubDevices(p.root);
      if (scrubbed.length) d.log(`cleaned up after a previous daemon: ${scrubbed.join(', ')}`);
      if (opts.metricsAddress) {
        const m = d.metrics;
        d.metricsServer = await serveMetrics(opts.metricsAddress, () => m.exposition(), m.contentType);
      }
      const server = createServer((sock) => d.serve(sock));
      await new Promise<void>((res, rej) => {
        server.once('error', rej);
        server.listen(p.socket, () => {
          server.off('error', rej);
          res();
        });
      });
      await chmod(p.socket, 0o600);
      d.server = server;
      await writeFile(p.pidFile, `${process.pid}\n`);
    } catch (e) {
      await d.metricsServer?.close();
      await lock.release();
      throw e;
    }
    d.log(`listening on ${p.socket} (pid ${process.pid}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4})`);
    if (d.metricsServer) d.log(`metrics on ${d.metricsServer.url}`);
    return d;
  }

  /**
   * Aborted at the first request that asks for work (any but IDLE_OPS; reason 'client') and when
   * the daemon stops ('stopping'): what runs only while the daemon is idle (its warm-up,
   * warm-up.ts) stops then.
   */
  get workArrived(): AbortSignal {
    return this.work.signal;
  }

  /** Handle one request (what the socket does, callable in-process too). */
  async handle(req: Request, io: RequestIo = {}): Promise<unknown> {
    if (this.draining && REFUSED_WHILE_DRAINING.has(req?.op)) {
      throw new DadiError('EINVAL', `${req.op}: the daemon is stopping`);
    }
    switch (req?.op) {
      case 'ping':
        return {
          pid: process.pid,
          cacheDir: this.opts.cacheDir,
          version: PROTOCOL_VERSION,
          stateDir: this.paths.root,
          devices: this.devices.size,
          ...(this.warmUp ? { warmUp: this.warmUp } : {}),
        } satisfies PingResult;
      case 'mount':
        return this.exclusive(() => this.mount(req));
      case 'umount':
        return this.exclusive(() => this.umount(req.target));
      case 'ps':
        return this.ps();
      case 'resolve':
        // Image resolution in the daemon, which already holds the registry client and its tokens:
        // the CLI then need not load the registry code at all (it counts in the time to start).
        if (!this.opts.resolveImage) throw new DadiError('EUNSUPPORTED', 'this daemon cannot resolve images');
        return this.resolve(req.ref, req.platform, this.opts.resolveImage, req.trace === true);
      case 'preconnect':
        void this.preconnect(req.ref);
        return {};
      case 'open': {
        if (!Array.isArray(req.layers) || req.layers.length > MAX_OPEN_LAYERS) {
          throw new DadiError('EINVAL', `open: layers must be a list of at most ${MAX_OPEN_LAYERS}`);
        }
        const specs = req.layers.map((l) => normalizeLayerSpec(l, '/')).filter((s) => s.kind === 'registry');
        this.openEarly(specs);
        return { opening: specs.length };
      }
      case 'launch': {
        const launch = launchFilesOf(req.launch) ?? { readThrough: false };
        // In the mount queue: a launch sent while its device mounts runs once the mount is done.
        return this.exclusive(async () => {
          const t = resolve(String(req.target));
          const dev = [...this.devices.values()].find((d) => d.target === t);
          if (!dev) throw new DadiError('ENOTFOUND', `launch: nothing is mounted at ${t}`);
          if (launch.readThrough) {
            dev.readThrough ??= readThroughOf(dev.target);
            dev.readThrough.start();
          }
          const rt = launch.readThrough ? dev.readThrough : undefined;
          dev.stack.ext4?.launch(launch, rt && ((p) => rt.add(p)));
          return { started: !!dev.stack.ext4 };
        });
      }
      case 'cache': {
        const cache = this.opts.remote ? (await this.remote()).cache : undefined;
        return cache ? cacheReport(cache) : null;
      }
      case 'status':
        return this.metrics.status();
      // Image reads for the CLI, through the cache this daemon owns. Not queued behind mounts:
      // they only read, and an export may take long.
      case 'browse':
        return browseForClient(req, await this.remote(), io.write ?? (async () => {}));
      case 'export':
        return exportForClient(req, await this.remote(), io.signal ?? new AbortController().signal);
      case 'shutdown':
        // Answer first, then tear down.
        setImmediate(() => void this.shutdown());
        return { stopping: true };
      default:
        throw new DadiError('EINVAL', `unknown request ${JSON.stringify((req as { op?: unknown })?.op)}`);
    }
  }

  ps(): DeviceInfo[] {
    return [...this.devices.values()].map((d) => ({
      id: d.id,
      target: d.target,
      rw: d.rw,
      layers: d.layers.map(({ spec, blob }) => {
        const pull = d.pull?.status.find((s) => s.digest === blob.cached?.key);
        return {
          kind: spec.kind,
          ref: spec.ref,
          blobBytesRead: blob.blobBytesRead(),
          ...(pull
            ? {
                pull: {
                  state: pull.state,
                  bytesFetched: pull.bytesFetched,
                  size: blob.cached?.size,
                  error: pull.error,
                },
              }
            : {}),
        };
      }),
      writable: d.writable,
      label: d.label,
      loop: d.mount.image.loop.device,
      fuseFile: d.mount.fuse.path,
      virtualSize: d.file.size,
      bytesRead: d.mount.fuse.stats.bytesRead,
      bytesWritten: d.mount.fuse.stats.bytesWritten,
      timings: d.timings,
      createdAt: d.createdAt,
      trace: d.trace?.info(d.stack),
      ...(d.readThrough ? { readThrough: { ...d.readThrough.stats, paths: [...d.readThrough.stats.paths] } } : {}),
    }));
  }

  /** Stop listening, unmount every device (forced), remove the socket and pid file. */
  shutdown(): Promise<void> {
    this.work.abort('stopping');
    this.stopping ??= (async () => {
      this.draining = true;
      this.log('shutting down');
      const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
      // Connections still open now belong to requests that did not finish in time.
      for (const sock of this.sockets) if (!sock.writableEnded) sock.destroy();
      await closed;
      await this.metricsServer?.close();
      await this.queue.catch(() => {});
      await this.closeEarly([...this.opening.keys()]);
      for (const d of [...this.devices.values()]) {
        await this.teardown(d, true).catch((e) => this.logger.error(`teardown of ${d.id}: ${(e as Error).message}`));
      }
      await unlink(this.paths.socket).catch(() => {});
      await unlink(this.paths.pidFile).catch(() => {});
      await this.lock?.release();
      this.log('stopped');
      this.resolveStopped();
    })();
    return this.stopping;
  }

  /**
   * Open connections to the registry of `ref` for the resolve that follows (the CLI's hint as it
   * starts: cli/daemon-hint.ts), through the cache only, as resolveRunImage's own preconnect.
   * Failures are ignored: the resolve connects anyway.
   */
  private async preconnect(ref: unknown): Promise<void> {
    if (typeof ref !== 'string' || !this.opts.resolveImage || !this.opts.remote || this.stopping) return;
    try {
      const { registry } = parseReference(ref);
      const c = await this.remote();
      if (c.cache) c.client.transport.preconnect(registry);
    } catch (e) {
      this.logger.debug(`preconnect for ${ref}: ${(e as Error).message}`);
    }
  }

  /** Resolve with the steps timed (answered as `timings`, and logged) and the layers opened early. */
  private async resolve(
    ref: string,
    platform: string | undefined,
    resolveImage: NonNullable<DaemonOptions['resolveImage']>,
    trace: boolean,
  ): Promise<object> {
    const timer = new StepTimer();
    const layersKnown = (specs: LayerSpec[], accel?: LayerSpec) => {
      // The replay's blob ranges, when the acceleration layer publishes them: fetched with the indexes.
      // Only the first few, what the container reads first: more GETs at once slow the config's and
      // the indexes' (the registry's CPU), which the mount waits for; the replay fetches the rest.
      const ranges =
        accel && trace ? decodeBlobRanges(accel.blobRanges, specs.length)?.slice(0, EARLY_BLOB_RANGES) : undefined;
      this.openEarly(specs, ranges);
      if (accel && trace) this.fetchTraceEarly(accel);
    };
    const resolved = await resolveImage(ref, platform, { timer, layersKnown });
    this.logger.info(`resolved ${ref} (${formatSteps(timer.steps)})`);
    return { ...resolved, timings: timer.steps };
  }

  /**
   * Open registry layers that a mount will soon ask for, so that their headers and indexes are in
   * the host cache by then: their fetches overlap the config fetch and the client's own steps
   * instead of starting with the mount. The mount waits for these (so the two never fetch the same
   * ranges twice) and takes them over as its stack's layers (claimEarly), or closes them once its
   * own stack is open; unclaimed ones close after a while. Failures are the mount's to report.
   */
  private openEarly(specs: LayerSpec[], ranges?: readonly BlobRange[]): void {
    for (const [i, spec] of specs.entries()) {
      if (spec.kind !== 'registry' || this.opening.has(spec.ref)) continue;
      const prefetch = ranges?.filter((r) => r.layer === i);
      const opened = (async () => openLayerBlob(layerBlobSourceOf(spec), await this.remote(), { prefetch }))().catch(
        (e) => {
          this.logger.debug(`opening ${spec.ref} early failed: ${(e as Error).message}`);
          return undefined;
        },
      );
      this.opening.set(spec.ref, opened);
      setTimeout(() => void this.closeEarly([spec.ref]), UNCLAIMED_EARLY_OPEN_MS).unref();
    }
  }

  /**
   * Fetch an acceleration layer's trace as the manifest arrives, beside the layers' index fetches,
   * for the mount that follows to replay (earlyTrace): fetched at the mount, it was one more round
   * trip between the mount request and the replay's first GETs. Unclaimed ones are dropped after a
   * while; a failed one is fetched again by the mount, which reports it.
   */
  private fetchTraceEarly(spec: LayerSpec): void {
    if (spec.kind !== 'registry' || this.stopping || this.earlyTraces.has(spec.ref)) return;
    const records = loadAccelerationTrace(spec.ref, spec, {
      remote: () => this.remote(),
      log: (m) => this.logger.debug(m),
    });
    this.earlyTraces.set(spec.ref, records);
    setTimeout(() => {
      if (this.earlyTraces.get(spec.ref) === records) this.earlyTraces.delete(spec.ref);
    }, UNCLAIMED_EARLY_OPEN_MS).unref();
  }

  /** The trace fetchTraceEarly fetched for this acceleration layer (spec ref), claimed once. */
  private earlyTrace(ref: string): Promise<TraceRecord[] | undefined> | undefined {
    const records = this.earlyTraces.get(ref);
    this.earlyTraces.delete(ref);
    return records;
  }

  /** Close what openEarly opened for these layers (spec refs). */
  private async closeEarly(refs: readonly string[]): Promise<void> {
    for (const ref of refs) {
      const opened = this.opening.get(ref);
      if (!opened) continue;
      this.opening.delete(ref);
      await (await opened)?.layer.close().catch(() => {});
    }
  }

  /**
   * The layers openEarly opened for these specs, once open, for the mount's stack to take over
   * (undefined where none was opened, it failed, or it came from another source: closeEarly closes
   * those after the stack is open). Opening them again took 10-30 ms of a cold start's mount on the
   * daemon's one thread (tar and ZFile headers, jump table and LSMT index parsed twice). Each is
   * claimed once; the stack closes it.
   */
  private async claimEarly(specs: readonly LayerSpec[]): Promise<(OpenedLayerBlob | undefined)[]> {
    return Promise.all(
      specs.map(async (spec) => {
        const opened = this.opening.get(spec.ref);
        const o = await opened;
        if (!o || this.opening.get(spec.ref) !== opened) return undefined;
        if (JSON.stringify(o.source) !== JSON.stringify(layerBlobSourceOf(spec))) return undefined;
        this.opening.delete(spec.ref);
        return o;
      }),
    );
  }

  private async mount(req: MountRequest): Promise<DeviceInfo> {
    // From the request on, so that the steps add up to the whole mount (checks count in the first).
    const timer = new StepTimer();
    if (this.stopping) throw new DadiError('EINVAL', 'the daemon is shutting down');
    if (!Array.isArray(req.layers) || req.layers.length === 0) {
      throw new DadiError('EINVAL', 'mount: no layers');
    }
    if (typeof req.target !== 'string' || !req.target.startsWith('/')) {
      throw new DadiError('EINVAL', `mount: target must be an absolute path, got ${JSON.stringify(req.target)}`);
    }
    const target = resolve(req.target);
    const st = await stat(target).catch(() => undefined);
    if (!st?.isDirectory()) throw new DadiError('ENOTFOUND', `mount: ${target} is not a directory`);
    if ([...this.devices.values()].some((d) => d.target === target)) {
      throw new DadiError('EEXIST', `mount: ${target} already has a dadi device`);
    }
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const need = (this.devices.size + 1) * this.readers + 4;
    if (!(pool >= need)) {
      throw new DadiError(
        'ERANGE',
        `mount ${target}: UV_THREADPOOL_SIZE=${pool} is too small for ${this.devices.size + 1} devices (need ${need}); ` +
          'restart the daemon with a larger UV_THREADPOOL_SIZE',
      );
    }
    const specs = req.layers.map((l) => normalizeLayerSpec(l, '/'));
    const launch = launchFilesOf(req.launch);
    // Reads start once the filesystem is mounted (start() below).
    const readThrough = launch?.readThrough ? readThroughOf(target) : undefined;
    const id = `d-${randomBytes(4).toString('hex')}`;
    const dir = join(this.paths.devices, id);
    await mkdir(dir, { recursive: true });
    const cleanup: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
    try {
      // The layers open (and the writable layer is made) while the FUSE export is mounted.
      const opening = (async () => {
        // The writable layer's files are made while the layers open: off the mount's path.
        const writable: Device['writable'] = !req.rw
          ? undefined
          : req.writable
            ? { data: resolve(req.writable.data), index: resolve(req.writable.index), ephemeral: false }
            : { data: join(dir, 'rw.data'), index: join(dir, 'rw.index'), ephemeral: true };
        const upper = writable && prepareWritableDevice(writable, { reuse: true });
        if (upper) cleanup.unshift(() => upper.discard()); // a no-op once the device owns the files
        const sources = specs.map(layerBlobSourceOf);
        const remote = sources.some((s) => s.kind === 'registry') ? await this.remote() : undefined;
        const trace = await prepareDeviceTrace(req.trace, {
          remote: () => this.remote(),
          store: new TraceStore(this.paths.traces),
          log: this.deviceLog(id),
          workers: this.settings.replayWorkers,
          early: (ref) => this.earlyTrace(ref),
        });
        const ext4 = this.settings.ext4Prefetch;
        const stack = await openLayerStack(sources, remote, {
          ...trace?.stackOptions,
          opened: await this.claimEarly(specs),
          ext4Prefetch:
            ext4 && !trace?.stackOptions.replay
              ? { ...ext4, writableMount: !!req.rw, log: this.deviceLog(id) }
              : undefined,
        }).finally(() => this.closeEarly(specs.map((s) => s.ref)));
        timer.lap('open layers');
        cleanup.unshift(() => stack.close());
        // The launch files are looked up with our own ext4 reader once the inode tables are in,
        // while the kernel mounts: not after it, one more chain of round trips on the start's path.
        if (launch) stack.ext4?.launch(launch, readThrough && ((p) => readThrough.add(p)));
        let file: LayerStack | ComboDevice = stack.device;
        if (upper) {
          const combo = await upper.open(stack.device);
          cleanup[0] = async () => {
            await stack.stopPrefetch();
            await combo.close();
          };
          file = combo;
          timer.lap('writable layer');
        }
        return { stack, trace, file, writable, exported: stack.ext4?.watch(file) ?? file };
      })();
      let mount: BlockMount;
      try {
        mount = await mountBlockFile(
          opening.then((o) => o.exported as typeof o.exported & Partial<WritableBlockFile>),
          target,
          {
            stateDir: dir,
            readOnly: !req.rw,
            // An ephemeral writable layer (no files named) or one deleted with the device need no syncs.
            durable: !((req.rw && !req.writable) || req.discardable === true),
            readers: this.readers,
            log: this.deviceLog(id),
          },
        );
      } finally {
        // Settled before any cleanup runs: its steps register what to close.
        await opening.catch(() => {});
      }
      const { stack, trace, file, writable } = await opening;
      const layers = specs.map((spec, i) => ({ spec, blob: stack.blobs[i]! }));
      const dev: Device = {
        id,
        target,
        dir,
        rw: !!req.rw,
        label: typeof req.label === 'string' ? req.label : undefined,
        layers,
        file,
        stack,
        trace,
        writable,
        mount,
        readThrough,
        timings: [...timer.steps, ...mount.steps],
        createdAt: new Date().toISOString(),
      };
      dev.pull = this.startPull(id, layers);
      this.devices.set(id, dev);
      readThrough?.start();
      this.log(
        `${id}: mounted ${specs.length} layers on ${target}${req.rw ? ' rw' : ''} via ${mount.image.loop.device} ` +
          `(${formatSteps(dev.timings)})`,
      );
      return this.ps().find((d) => d.id === id)!;
    } catch (e) {
      await readThrough?.stop();
      for (const c of cleanup) await c().catch(() => {});
      throw e;
    }
  }

  private async umount(targetOrId: string): Promise<{ id: string; target: string; trace?: DeviceTraceInfo }> {
    const abs = targetOrId.startsWith('/') ? resolve(targetOrId) : undefined;
    const dev = [...this.devices.values()].find((d) => d.id === targetOrId || d.target === abs);
    if (!dev) throw new DadiError('ENOTFOUND', `umount: no dadi device at ${targetOrId}`);
    const trace = await this.teardown(dev, false);
    return { id: dev.id, target: dev.target, trace };
  }

  /**
   * ext4 (refusing when busy unless `force`, which detaches lazily), loop device, FUSE export, then
   * flush and close the device, then the device folder (ephemeral writable layers with it).
   */
  private async teardown(dev: Device, force: boolean): Promise<DeviceTraceInfo | undefined> {
    // Its reads keep the mount busy: they end first.
    const read = await dev.readThrough?.stop();
    if (read?.files) {
      const { paths: _, ...counts } = read;
      this.deviceLog(dev.id)(`read through the mount: ${JSON.stringify(counts)}`);
    }
    try {
      await unmountFilesystem(dev.target, { lazy: force });
    } catch (e) {
      throw new DadiError('EIO', `umount ${dev.target}: ${(e as Error).message} (is it busy?)`, { cause: e });
    }
    this.devices.delete(dev.id);
    let first: unknown;
    await dev.pull?.stop();
    const ext4 = await dev.stack.ext4?.cancel();
    if (ext4) this.deviceLog(dev.id)(`ext4 prefetch: ${JSON.stringify(ext4)}`);
    await dev.mount.unmount().catch((e) => (first = e));
    if (dev.file instanceof ComboDevice) await dev.file.flush().catch((e) => (first ??= e));
    // After the last read through the device, before its layers close: stop the replay, save a recording.
    const trace = await dev.trace?.finish(dev.stack);
    this.countError('replay', trace?.replay?.failed ?? 0);
    await dev.file.close().catch((e) => (first ??= e));
    const fuseDir = join(dev.dir, 'fuse');
    if (await findMount(fuseDir)) await forceUnmountFuse(fuseDir);
    if (await findMount(fuseDir)) {
      first ??= new DadiError('EIO', `${fuseDir}: FUSE mount still present; left ${dev.dir} in place`);
    } else {
      await rm(dev.dir, { recursive: true, force: true });
    }
    this.log(`${dev.id}: unmounted ${dev.target}`);
    if (first) throw first;
    return trace;
  }

  /** Start pulling the device's cached registry layers, bottom first, if configured. */
  private startPull(id: string, layers: Device['layers']): LayerPull | undefined {
    const config = this.settings.backgroundPull;
    if (!config?.enabled) return undefined;
    const targets: PullTarget[] = [];
    for (const { spec, blob } of layers) {
      const c = blob.cached;
      if (c && !(this.pulled.has(c.key) && c.isComplete())) targets.push({ name: spec.ref, digest: c.key, blob: c });
    }
    if (!targets.length) return undefined;
    if (this.pullLimiter?.bytesPerSecond !== config.maxMBps * 1e6) {
      this.pullLimiter = new RateLimiter(config.maxMBps * 1e6, () => performance.now());
    }
    const pull = new LayerPull(targets, config, { limiter: this.pullLimiter, log: this.deviceLog(id) });
    void pull.done.then((all) => {
      for (const s of all) if (s.state === 'verified') this.pulled.add(s.digest);
      this.countError('pull', all.filter((s) => s.state === 'failed').length);
    });
    return pull;
  }

  private remote(): Promise<RemoteContext> {
    if (!this.opts.remote) throw new DadiError('EUNSUPPORTED', 'this daemon cannot open registry layers');
    return this.opts.remote().then((ctx) => (this.remoteOpened = ctx));
  }

  /** The figures of `dadi status` and /metrics but the fetch histograms (daemon-metrics.ts adds those). */
  private async figures(): Promise<Omit<DaemonStatus, 'fetches'>> {
    const containers = await listContainers({ stateDir: this.paths.root }).catch(() => []);
    const { fetches: _, ...status } = daemonStatus({
      pid: process.pid,
      protocolVersion: PROTOCOL_VERSION,
      stateDir: this.paths.root,
      cacheDir: this.opts.cacheDir,
      startedAt: this.startedAt,
      metricsUrl: this.metricsServer?.url,
      requests: { inFlight: this.requestsInFlight, total: this.requestsTotal },
      devices: this.ps(),
      containers,
      cache: this.remoteOpened?.cache?.stats(),
      registry: this.remoteOpened?.client.stats,
      p2p: this.remoteOpened?.p2p?.counters.snapshot(),
      fetches: [],
      errors: this.errors,
    });
    return status;
  }

  /** An error nobody handled (process-faults.ts): counted with the rest, by kind and code. */
  countFault(kind: FaultKind, code: string): void {
    this.countError(kind, 1, code);
  }

  /** How long a drain may take (SIGTERM, or after an uncaught exception). */
  get drainTimeoutMs(): number {
    return this.settings.drainTimeoutMs;
  }

  private countError(kind: ErrorKind, n: number, code = ''): void {
    if (n > 0) this.errors.set(errorKey(kind, code), (this.errors.get(errorKey(kind, code)) ?? 0) + n);
  }

  /** Count a request while `run` handles it, and its failure by code. */
  private async counted<T>(op: string, run: () => Promise<T>): Promise<T> {
    const add = (m: Map<string, number>, n: number) => m.set(op, (m.get(op) ?? 0) + n);
    add(this.requestsInFlight, 1);
    add(this.requestsTotal, 1);
    try {
      return await run();
    } catch (e) {
      this.countError('request', 1, e instanceof DadiError ? e.code : 'EIO');
      throw e;
    } finally {
      add(this.requestsInFlight, -1);
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private serve(sock: Socket): void {
    let buf = '';
    let done = false;
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.setEncoding('utf8');
    sock.on('error', () => {});
    sock.on('data', (chunk: string) => {
      if (done) return;
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > MAX_REQUEST_BYTES) {
          done = true;
          reply(sock, { ok: false, error: { code: 'EINVAL', message: 'request too large' } });
        }
        return;
      }
      done = true;
      const line = buf.slice(0, nl);
      const gone = new AbortController();
      sock.once('close', () => gone.abort());
      this.inflight++;
      void (async () => {
        let res: Response;
        let req: Request | undefined;
        const started = performance.now();
        try {
          req = JSON.parse(line) as Request;
          if (!IDLE_OPS.has(String(req?.op))) this.work.abort('client');
          const op = typeof req?.op === 'string' && KNOWN_OPS.has(req.op) ? req.op : 'unknown';
          const parsed = req;
          res = {
            ok: true,
            result: await this.counted(op, () =>
              this.handle(parsed, { write: frameWriter(sock), signal: gone.signal }),
            ),
          };
        } catch (e) {
          const err = e as DadiError;
          res = {
            ok: false,
            error: { code: err instanceof DadiError ? err.code : 'EIO', message: err?.message ?? String(e) },
          };
          this.logger.warn(`request failed: ${res.error.message}`, { op: req?.op, code: res.error.code });
        } finally {
          this.inflight--;
        }
        this.logger.debug('request', { op: req?.op, ok: res.ok, ms: Math.round(performance.now() - started) });
        reply(sock, res);
      })();
    });
  }

  private log(message: string): void {
    this.logger.info(message);
  }

  /** The log of one device: its messages tagged with its id; those that warn at warn level. */
  private deviceLog(id: string): (message: string) => void {
    return (m) => (/^warning\b/i.test(m) ? this.logger.warn(m, { device: id }) : this.logger.info(`${id}: ${m}`));
  }

  /** Apply reloaded settings (SIGHUP): devices mounted from now on, and the next SIGTERM, use them. */
  reconfigure(settings: Partial<DaemonSettings>): void {
    this.settings = { ...this.settings, ...settings };
  }

  /**
   * SIGTERM: take no new work, let the requests in flight finish, then (onStop 'unmount') stop the
   * containers running on our devices and give their clients time to clean up, or (onStop 'wait')
   * wait until every device is released; then shut down. A second call tears down at once.
   */
  stop(): Promise<void> {
    this.work.abort('stopping');
    if (this.draining) {
      this.logger.warn('stopping again: tearing down now');
      return this.shutdown();
    }
    this.draining = true;
    const { onStop, drainTimeoutMs } = this.settings;
    this.logger.info(
      `stopping: draining ${this.inflight} requests, then ${onStop === 'wait' ? 'waiting for' : 'unmounting'} ${this.devices.size} devices`,
    );
    return (async () => {
      const deadline = Date.now() + drainTimeoutMs;
      const waitUntil = async (done: () => boolean, until: number) => {
        while (!done() && Date.now() < until && !this.stopping) await sleep(50);
      };
      await waitUntil(() => this.inflight === 0, deadline);
      if (onStop === 'wait') {
        await waitUntil(() => this.inflight === 0 && this.devices.size === 0, Number.POSITIVE_INFINITY);
      } else {
        const stopped = await this.stopContainers(deadline);
        // Their clients (`dadi run`) unmount their devices and remove them as the containers exit.
        const theirs = () => [...this.devices.values()].some((d) => d.label !== undefined && stopped.has(d.label));
        await waitUntil(() => this.inflight === 0 && !theirs(), deadline);
      }
      if (this.inflight > 0)
        this.logger.warn(
          `stopping: ${this.inflight} requests still in flight after ${drainTimeoutMs} ms; aborting them`,
        );
      await this.shutdown();
    })();
  }

  /** SIGTERM (then SIGKILL after a grace period) to the runc containers running on our devices. */
  private async stopContainers(deadline: number): Promise<Set<string>> {
    const labels = new Set([...this.devices.values()].flatMap((d) => (d.label ? [d.label] : [])));
    const running = async () =>
      (await runcList(this.paths.runc).catch(() => [])).filter((c) => c.status === 'running' && labels.has(c.id));
    const targets = await running();
    if (!targets.length) return new Set();
    this.logger.info(`stopping containers ${targets.map((c) => c.id).join(', ')}`);
    for (const c of targets) await runcKill(this.paths.runc, c.id, 'TERM').catch(() => {});
    const graceEnd = Math.min(deadline, Date.now() + CONTAINER_KILL_GRACE_MS);
    let left = targets;
    while (left.length && Date.now() < graceEnd) {
      await sleep(100);
      left = await running();
    }
    for (const c of left) await runcKill(this.paths.runc, c.id, 'KILL').catch(() => {});
    return new Set(targets.map((c) => c.id));
  }
}

/** Data frames on `sock` (a `{"data":N}` line, then N bytes), waiting while the client is behind. */
function frameWriter(sock: Socket): (chunk: Uint8Array) => Promise<void> {
  return async (chunk) => {
    if (sock.destroyed) throw new DadiError('EIO', 'the client closed the connection');
    sock.write(`{"data":${chunk.length}}\n`);
    // A copy: the reader may reuse its buffer once this resolves, before the socket sent it.
    if (sock.write(Buffer.from(chunk))) return;
    await new Promise<void>((res, rej) => {
      const done = () => {
        sock.off('drain', done);
        sock.off('close', done);
        if (sock.destroyed) rej(new DadiError('EIO', 'the client closed the connection'));
        else res();
      };
      sock.on('drain', done);
      sock.on('close', done);
    });
  };
}

/** Bounds on a mount request's launch files (a start names a handful). */
const MAX_LAUNCH_PATHS = 64;
const MAX_LAUNCH_PATH_LENGTH = 4096;

/** The request's launch files, checked (absolute paths, bounded), or an error naming the problem. */
function launchFilesOf(launch: MountRequest['launch']): (LaunchFiles & { readThrough: boolean }) | undefined {
  if (launch === undefined) return undefined;
  const list = (what: 'files' | 'exec'): string[] => {
    const v = launch?.[what] ?? [];
    const ok =
      Array.isArray(v) &&
      v.length <= MAX_LAUNCH_PATHS &&
      v.every((p) => typeof p === 'string' && p.startsWith('/') && p.length <= MAX_LAUNCH_PATH_LENGTH);
    if (!ok) {
      throw new DadiError(
        'EINVAL',
        `mount: launch.${what} must be at most ${MAX_LAUNCH_PATHS} absolute paths of at most ${MAX_LAUNCH_PATH_LENGTH} characters`,
      );
    }
    return v;
  };
  const args = launch.args ?? [];
  if (
    !Array.isArray(args) ||
    args.length > MAX_LAUNCH_ARGS ||
    !args.every((a) => typeof a === 'string' && a.length <= MAX_LAUNCH_ARG_LENGTH)
  ) {
    throw new DadiError(
      'EINVAL',
      `mount: launch.args must be at most ${MAX_LAUNCH_ARGS} strings of at most ${MAX_LAUNCH_ARG_LENGTH} characters`,
    );
  }
  return { files: list('files'), exec: list('exec'), args, readThrough: launch?.readThrough === true };
}

/** A device's read-through of its launch files (each read whole up to the launch files' fetch bound). */
function readThroughOf(target: string): ReadThrough {
  return new ReadThrough(target, { maxFileBytes: LAUNCH_FILE_BYTES, maxFiles: MAX_LAUNCH_PATHS });
}

function reply(sock: Socket, res: Response): void {
  if (!sock.destroyed) sock.end(`${JSON.stringify(res)}\n`);
}

export { socketAnswers } from './socket.js';

/**
 * Run the daemon in this process until SIGTERM/SIGINT (drain, then stop; see Daemon.stop) or a
 * `shutdown` request (what `dadi daemon` calls). SIGHUP calls `reload` (the config file again).
 * Needs UV_THREADPOOL_SIZE set in the environment before Node started.
 */
export async function runDaemonForeground(
  opts: DaemonOptions = {},
  hooks: { reload?: (d: Daemon) => Promise<void>; started?: (d: Daemon) => void } = {},
): Promise<void> {
  const d = await Daemon.start(opts);
  // One stray error must not take down every mounted rootfs (see process-faults.ts).
  const unfault = installFaultPolicy({
    log: (m) => d.logger.error(m),
    count: (kind, code) => d.countFault(kind, code),
    drain: () => d.stop(),
    // The drain's own deadline, then time to unmount and close.
    drainDeadlineMs: d.drainTimeoutMs + 15_000,
  });
  hooks.started?.(d);
  const stop = () => void d.stop();
  const reload = () => void hooks.reload?.(d);
  const signals = ['SIGTERM', 'SIGINT'] as const;
  for (const s of signals) process.on(s, stop);
  process.on('SIGHUP', reload);
  try {
    await d.stopped;
  } finally {
    for (const s of signals) process.off(s, stop);
    process.off('SIGHUP', reload);
    unfault();
  }
}
