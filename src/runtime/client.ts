// Talk to the host daemon over its unix socket (protocol.ts), starting it on demand: when nothing
// answers, remove a stale socket, spawn `node … daemon-main` detached with a large
// UV_THREADPOOL_SIZE and its log in `<state>/daemon.log`, and wait for the socket.
// Not the daemon (daemon.ts) and not the CLI's printing.
//
// @example
//   const c = await DaemonClient.connect({ autoStart: true });
//   const dev = await c.mount({ layers: ['/l/base.tar'], target: '/mnt/x' });
//   console.log(await c.ps());
//   await c.umount('/mnt/x');

import { spawn } from 'node:child_process';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DadiError, type DadiErrorCode } from '../errors.js';
import { withExtraCaCerts } from '../util/extra-ca-certs.js';
import { type LayerSpec, normalizeLayerSpec } from './layer-spec.js';
import { daemonLockKey, ProcessLock, startLockKey } from './lock.js';
import type {
  BrowseRequest,
  CacheReport,
  DaemonStatus,
  DeviceInfo,
  DeviceTraceInfo,
  ExportRequest,
  ExportResult,
  LaunchRequest,
  MountRequest,
  PingResult,
  Request,
  Response,
} from './protocol.js';
import { socketAnswers } from './socket.js';
import { statePaths } from './state.js';

/** The threadpool the client gives a daemon it starts: 4 readers per device, ~30 devices. */
export const DAEMON_THREADPOOL_SIZE = 128;

/**
 * V8 flags for the daemon's process (here and in bin/dadi's `daemon`). A 4x interrupt budget makes
 * functions run 4x longer in the interpreter and Sparkplug before V8 tiers them up to TurboFan: on a
 * container's start, TurboFan otherwise compiles the ~16 functions that the start makes hot (jump
 * table, group descriptors, inode scan, CRC) on a background thread while containerd, runc and the
 * registry want the same 2 cores; sustained reads still reach TurboFan code within a second.
 */
export const DAEMON_V8_FLAGS: readonly string[] = ['--interrupt-budget=270336'];

export interface ClientOptions {
  stateDir?: string;
  /** Start a daemon when none answers (default true). */
  autoStart?: boolean;
  /**
   * The command that runs the daemon in the foreground, e.g. the CLI's ['/usr/bin/node', 'bin/dadi.js',
   * 'daemon']. Default: this package's daemon-main entry (built .js, or the .ts source through tsx).
   * The state folder is passed in $DADI_STATE.
   */
  daemonCommand?: string[];
  /** How long to wait for a started daemon's socket (default 20 s). */
  startTimeoutMs?: number;
  /** Per-request timeout (default 120 s). */
  requestTimeoutMs?: number;
}

export class DaemonClient {
  readonly paths: ReturnType<typeof statePaths>;
  /** The pid of the daemon this client started, if it did. */
  startedPid: number | undefined;

  private constructor(
    private readonly opts: ClientOptions,
    paths: ReturnType<typeof statePaths>,
  ) {
    this.paths = paths;
  }

  /** Connect to the daemon of the state folder, starting one unless `autoStart: false`. */
  static async connect(opts: ClientOptions = {}): Promise<DaemonClient> {
    const c = new DaemonClient(opts, statePaths(opts.stateDir));
    if (await socketAnswers(c.paths.socket)) return c;
    if (opts.autoStart === false) throw new DadiError('ENOTFOUND', `no dadi daemon answers on ${c.paths.socket}`);
    await c.startDaemon();
    return c;
  }

  /** Send `req`; `onSent` is called once it is written (the caller may then do other work). */
  request<T>(req: Request, onSent?: () => void): Promise<T> {
    return sendRequest<T>(this.paths.socket, req, this.opts.requestTimeoutMs ?? 120_000, undefined, onSent);
  }

  ping(): Promise<PingResult> {
    return this.request({ op: 'ping' });
  }

  /**
   * Mount a stack (layer paths are made absolute here, against this process's cwd). `onSent`: the
   * request is written, the daemon mounts (work done then overlaps the mount, not delays it).
   */
  mount(req: Omit<MountRequest, 'op'>, onSent?: () => void): Promise<DeviceInfo> {
    const layers = req.layers.map((l) => normalizeLayerSpec(l));
    const writable = req.writable && { data: resolve(req.writable.data), index: resolve(req.writable.index) };
    return this.request({ ...req, op: 'mount', layers, target: resolve(req.target), writable }, onSent);
  }

  /** Have the daemon start opening registry layers that a mount will soon ask for. */
  openAhead(layers: LayerSpec[]): Promise<{ opening: number }> {
    return this.request({ op: 'open', layers });
  }

  /** Fetch these launch files on the device mounted at `target`, in the background (answers at once). */
  launch(target: string, launch: LaunchRequest): Promise<{ started: boolean }> {
    return this.request({ op: 'launch', target: resolve(target), launch });
  }

  /** Unmount by target folder or device id. */
  umount(targetOrId: string): Promise<{ id: string; target: string; trace?: DeviceTraceInfo }> {
    const t = targetOrId.startsWith('d-') ? targetOrId : resolve(targetOrId);
    return this.request({ op: 'umount', target: t });
  }

  /** Resolve an image reference in the daemon (manifest layers, config, pinned digest). */
  resolve<T = unknown>(ref: string, platform?: string, opts: { trace?: boolean } = {}): Promise<T> {
    return this.request({ op: 'resolve', ref, platform, ...(opts.trace ? { trace: true } : {}) });
  }

  ps(): Promise<DeviceInfo[]> {
    return this.request({ op: 'ps' });
  }

  /** The block cache the daemon owns (usage, counters, blobs), or null when it has none. */
  cache(): Promise<CacheReport | null> {
    return this.request({ op: 'cache' });
  }

  /** The daemon's figures: requests, devices, containers, cache, registry, fetch latency, errors. */
  status(): Promise<DaemonStatus> {
    return this.request({ op: 'status' });
  }

  /**
   * `ls`/`stat`/`cat` of an image, run by the daemon through the cache it owns; `cat` streams the
   * file to `onData` (backpressure: the next chunk waits for its promise).
   */
  browse<T = unknown>(req: Omit<BrowseRequest, 'op'>, onData?: (chunk: Buffer) => unknown): Promise<T> {
    return sendRequest(this.paths.socket, { ...req, op: 'browse' }, 0, onData);
  }

  /** Have the daemon export an image or a layer stack into `out` (made absolute here). */
  exportDisk(req: Omit<ExportRequest, 'op'>): Promise<ExportResult> {
    const layers = req.layers?.map((l) => normalizeLayerSpec(l));
    return sendRequest(this.paths.socket, { ...req, op: 'export', out: resolve(req.out), layers }, 0);
  }

  /** Ask the daemon to tear everything down and exit; waits until its socket is gone. */
  async shutdown(timeoutMs = 30_000): Promise<void> {
    const pid = await this.ping().then(
      (p) => p.pid,
      () => undefined,
    );
    await this.request({ op: 'shutdown' }).catch(() => {});
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const alive = pid !== undefined && pidAlive(pid);
      if (!alive && !(await socketAnswers(this.paths.socket))) return;
      await sleep(50);
    }
    throw new DadiError('ETIMEDOUT', `dadi daemon (pid ${pid}) did not stop within ${timeoutMs} ms`);
  }

  /**
   * Start a daemon, at most one at a time per state folder: the starter holds the start lock
   * (lock.ts, released by the kernel if the starter dies) while it spawns the daemon and waits for
   * its socket; other clients wait for the socket and take over if the starter gives up. A daemon
   * that holds its own lock but does not answer yet (still cleaning up after a dead one) is waited
   * for, never replaced.
   */
  private async startDaemon(): Promise<void> {
    const p = this.paths;
    await mkdir(p.root, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 20_000);
    while (Date.now() < deadline) {
      if (await socketAnswers(p.socket)) return;
      const lock = await ProcessLock.tryAcquire(startLockKey(p.root));
      if (lock) {
        try {
          return await this.spawnDaemon(deadline - Date.now());
        } finally {
          await lock.release();
        }
      }
      await sleep(50);
    }
    return this.waitForSocket(0);
  }

  /** Spawn the daemon (the caller holds the start lock) and wait for its socket. */
  private async spawnDaemon(timeoutMs: number): Promise<void> {
    const p = this.paths;
    if (await socketAnswers(p.socket)) return;
    if (await ProcessLock.isHeld(daemonLockKey(p.root))) return this.waitForSocket(timeoutMs);
    // No daemon owns the folder, so a socket file left here is stale.
    await unlink(p.socket).catch(() => {});
    const [cmd, ...args] = this.opts.daemonCommand ?? defaultDaemonCommand();
    const log = await open(p.log, 'a');
    try {
      const child = spawn(cmd!, args, {
        detached: true,
        cwd: '/',
        stdio: ['ignore', log.fd, log.fd],
        env: daemonEnvironment(process.env, p.root),
      });
      child.unref();
      this.startedPid = child.pid;
      let exited: number | null | undefined;
      child.once('exit', (code) => (exited = code));
      await this.waitForSocket(timeoutMs, () => exited !== undefined);
    } finally {
      await log.close();
    }
  }

  private async waitForSocket(timeoutMs: number, gaveUp?: () => boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await socketAnswers(this.paths.socket)) return;
      if (gaveUp?.()) break;
      await sleep(50);
    }
    const tail = (await readFile(this.paths.log, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n');
    throw new DadiError('ETIMEDOUT', `dadi daemon did not come up on ${this.paths.socket}; log tail:\n${tail}`);
  }
}

/**
 * One request over a fresh connection. Data frames the daemon streams ahead of its answer
 * (protocol.ts) go to `onData`, in order; the socket pauses while its promise is pending. The
 * timeout counts from the last thing received (0: none).
 */
export function sendRequest<T>(
  socket: string,
  req: Request,
  timeoutMs = 120_000,
  onData?: (chunk: Buffer) => unknown,
  onSent?: () => void,
): Promise<T> {
  return new Promise<T>((res, rej) => {
    const c = connect(socket);
    let buf: Buffer = Buffer.alloc(0);
    let frameLeft = 0;
    let failed = false;
    let timer: NodeJS.Timeout | undefined;
    const fail = (e: DadiError) => {
      failed = true;
      clearTimeout(timer);
      c.destroy();
      rej(e);
    };
    const arm = () => {
      clearTimeout(timer);
      if (timeoutMs > 0) {
        timer = setTimeout(
          () => fail(new DadiError('ETIMEDOUT', `dadi daemon: no answer to ${req.op} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }
    };
    /** Hand complete data frames over; what is left is (the start of) the answer line. */
    const drainFrames = async () => {
      for (;;) {
        if (frameLeft > 0) {
          if (buf.length === 0) return;
          const n = Math.min(frameLeft, buf.length);
          const chunk = buf.subarray(0, n);
          buf = buf.subarray(n);
          frameLeft -= n;
          await onData?.(chunk);
          continue;
        }
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const m = /^\{"data":(\d+)\}$/.exec(buf.subarray(0, nl).toString('latin1'));
        if (!m) return;
        frameLeft = Number(m[1]);
        buf = buf.subarray(nl + 1);
      }
    };
    let chain: Promise<void> = Promise.resolve();
    arm();
    c.on('connect', () => c.write(`${JSON.stringify(req)}\n`, () => onSent?.()));
    c.on('data', (d: Buffer) => {
      arm();
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      c.pause();
      chain = chain.then(drainFrames).then(
        () => {
          if (!failed) c.resume();
        },
        (e) => fail(e instanceof DadiError ? e : new DadiError('EIO', (e as Error).message, { cause: e })),
      );
    });
    c.on('error', (e) => {
      if (!failed) fail(new DadiError('EIO', `dadi daemon at ${socket}: ${e.message}`, { cause: e }));
    });
    c.on('end', () => {
      void chain.then(() => {
        if (failed) return;
        clearTimeout(timer);
        let r: Response<T>;
        try {
          r = JSON.parse(buf.toString('utf8')) as Response<T>;
        } catch {
          return rej(
            new DadiError('EIO', `dadi daemon at ${socket}: bad answer to ${req.op}: ${buf.toString('utf8', 0, 200)}`),
          );
        }
        if (r.ok) res(r.result);
        else rej(new DadiError(r.error.code as DadiErrorCode, r.error.message));
      });
    });
  });
}

/**
 * The environment of a daemon a client starts: the client's, with the state folder, a threadpool
 * for the FUSE readers, and the CA file that bin/dadi set aside for the client (the daemon talks
 * TLS to registries) given back.
 */
export function daemonEnvironment(env: NodeJS.ProcessEnv, stateDir: string): NodeJS.ProcessEnv {
  return {
    ...(withExtraCaCerts(env) ?? env),
    DADI_STATE: stateDir,
    UV_THREADPOOL_SIZE: String(DAEMON_THREADPOOL_SIZE),
  };
}

/**
 * `node <DAEMON_V8_FLAGS> [--import tsx] <daemon-main>` of this build (.js when built, .ts from source), found from a
 * folder one level under the tree's root, as this module's and the client bundle's (dist/cli) are.
 */
export function defaultDaemonCommand(): string[] {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const main = fileURLToPath(new URL(`../runtime/daemon-main${ext}`, import.meta.url));
  if (ext === '.js') return [process.execPath, ...DAEMON_V8_FLAGS, main];
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return [process.execPath, ...DAEMON_V8_FLAGS, '--import', tsx, main];
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
