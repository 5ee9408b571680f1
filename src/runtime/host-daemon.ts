// The host daemon as dadi runs it: local layer files plus registry blobs through the host's block
// cache, which the daemon claims as it starts (image/host-cache.ts) so that it is the cache's one
// owner; the cache itself opens on the first remote read. Both `dadi daemon` and the on-demand
// auto-start entry call this. Settings come from the config file (src/config) under the flags;
// SIGHUP reads the file again and applies the keys marked `reload` (log level and path, background
// pull, trace replay, stop behaviour), logging which changed keys wait for a restart.

import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { changedKeys, type DadiConfig, layerPullConfigOf, loadConfig } from '../config/index.js';
import { DigestStore } from '../image/digest-store.js';
import { type CacheClaim, cacheHeldNote, claimHostCache } from '../image/host-cache.js';
import { ImageRecords, resolveWithRecord } from '../image/image-records.js';
import { defaultCacheDir, openRemoteContext, type P2PSettings, type RemoteContext } from '../image/remote-context.js';
import { resolveRunImage } from '../image/resolve-image.js';
import { type Logger, RootLogger } from '../log/logger.js';
import { parsePlatform } from '../oci/index.js';
import { warmHttpClient } from '../registry/warm-http.js';
import { formatSteps } from '../util/step-timer.js';
import { type Daemon, type DaemonSettings, runDaemonForeground } from './daemon.js';
import { DaemonMetrics } from './daemon-metrics.js';
import { registryLayerSpecs } from './layer-spec.js';
import { type MetricsAddress, parseMetricsAddress } from './metrics-server.js';
import type { FetchSource } from './status.js';
import { warmStartPath } from './warm-up.js';

export interface HostDaemonOptions {
  stateDir?: string;
  cacheDir?: string;
  /** --config (else $DADI_CONFIG, else /etc/dadi/config.yaml if present). */
  configFile?: string;
  /** --metrics-address: serve Prometheus metrics here (default: metrics.address of the config, else off). */
  metricsAddress?: MetricsAddress;
  /** Read registry blobs through a P2P root's trees (daemon flags for now). */
  p2p?: P2PSettings;
  /**
   * Warm the start path once listening (warm-up.ts; default true). Off for a daemon a client starts
   * on demand: that client's start is already waiting, the warm-up would only compete with it.
   */
  warmUp?: boolean;
}

export async function runHostDaemon(opts: HostDaemonOptions = {}): Promise<void> {
  keepWasmOnBaselineCompiler();
  // Checked before anything starts, so a bad key or override stops the daemon with its message.
  const loaded = await loadConfig({ file: opts.configFile });
  const config = loaded.config;
  /** What the last reload applied (the reload keys); restart keys compare with `config`. */
  let applied = config;
  const logger = RootLogger.create(logSettingsOf(config), 'daemon');
  logger.info(`config ${loaded.file ?? '(none: defaults)'}`, { overrides: loaded.overrides });
  const configured = config.metrics.address;
  const metricsAddress =
    opts.metricsAddress ?? (configured ? parseMetricsAddress(configured, 'metrics.address') : undefined);
  const cacheDir = opts.cacheDir ?? config.cacheConfig.cacheDir ?? defaultCacheDir();
  const p2pWanted = opts.p2p ?? p2pFromConfig(config.p2pConfig);
  const p2pLog = logger.child('p2p');
  const p2p = p2pWanted && {
    log: (m: string) => p2pLog.info(m),
    chunkSize: config.p2pConfig.chunkSize,
    ...p2pWanted,
  };
  const capacity = Math.round(config.cacheConfig.cacheSizeGB * 2 ** 30);
  // With P2P the cache refills in whole chunks: one miss is one chunk request to the parent.
  // No blind readahead in the cache: the kernel reads ahead within each file, and the devices'
  // ext4 prefetch reads small files' extents whole; the cache's own, blind to files, fetched 2.2
  // of a python cold start's 10.8 MB, 0.64 MB of it never read (from metadata reads and past the
  // ends of files: bench/fetch-account.ts). With P2P, one fetched ahead of any read would also
  // travel the tree up to the root and become registry egress for bytes no container may read.
  const claimed = await claimHostCache(cacheDir, 'the dadi daemon', {
    capacity,
    readahead: 0,
    ...(p2p ? { refillSize: p2p.chunkSize } : {}),
  });
  let claim: CacheClaim | undefined;
  if ('heldBy' in claimed) logger.warn(`${cacheHeldNote(cacheDir, claimed.heldBy)}; reading without it`);
  else claim = claimed;
  // Only the cache's owner writes beside it.
  const records = claim ? new ImageRecords(cacheDir) : undefined;
  const configs = claim ? new DigestStore(join(cacheDir, 'images')) : undefined;
  const registryLog = registryLogOf(logger.child('registry'));
  let ctx: Promise<RemoteContext> | undefined;
  const metrics = new DaemonMetrics();
  const onFetch = (source: FetchSource, bytes: number, seconds: number) => metrics.observeFetch(source, bytes, seconds);
  // Without the claim (another process held the cache at start) the context tries once more.
  const remote = () =>
    (ctx ??= openRemoteContext({
      cacheDir,
      cacheSize: capacity,
      claim,
      role: 'the dadi daemon',
      onFetch,
      registryLog,
      p2p,
      hostsDir: config.registry.hostsDir || undefined,
    }));
  const reload = async (d: Daemon) => {
    let next: DadiConfig;
    try {
      next = (await loadConfig({ file: opts.configFile })).config;
    } catch (e) {
      logger.error(`reload refused, the running config stays: ${(e as Error).message}`);
      return;
    }
    const now = changedKeys(applied, next).filter((f) => f.meta.apply === 'reload');
    const later = changedKeys(config, next).filter((f) => f.meta.apply === 'restart');
    logger.reconfigure(logSettingsOf(next));
    d.reconfigure(daemonSettingsOf(next));
    applied = next;
    logger.info(
      `reloaded config: ${now.length ? `applied ${now.map((f) => f.path).join(', ')}` : 'no change to apply'}`,
    );
    if (later.length) {
      logger.warn(`reload: ${later.map((f) => f.path).join(', ')} changed; these apply at the next restart`);
    }
  };
  // Before it listens: the first start it serves then finds the HTTP client warm.
  await warmHttpClient();
  collectStartupGarbage();
  let warming: Promise<void> | undefined;
  try {
    // The agent serves children and proxy clients from the start, and a bad listen address stops the daemon.
    if (p2p) {
      const c = await remote();
      logger.info(c.p2p ? `p2p agent ${c.p2p.hostId} on ${c.p2p.address}, root ${p2p.root}` : 'p2p off: no cache');
    }
    await runDaemonForeground(
      {
        stateDir: opts.stateDir ?? config.daemon.stateDir,
        readers: config.daemon.readers,
        logger,
        settings: daemonSettingsOf(config),
        remote,
        cacheDir,
        metrics,
        metricsAddress,
        resolveImage: async (ref, platform, hooks) => {
          const c = await remote();
          hooks.timer.lap('registry client');
          const ctx = platform ? { ...c, platform: parsePlatform(platform) } : c;
          const resolve = () =>
            resolveRunImage(ref, ctx, {
              configs,
              timer: hooks.timer,
              preconnect: !!c.cache,
              // Registry layers open through the cache only: without it the fetches would be lost.
              onLayers: c.cache
                ? (img) =>
                    hooks.layersKnown(
                      registryLayerSpecs(img.registry, img.repository, img.layers),
                      img.accelerationLayer && {
                        ...registryLayerSpecs(img.registry, img.repository, [img.accelerationLayer])[0]!,
                        blobRanges: img.accelerationLayer.blobRanges,
                      },
                    )
                : undefined,
            });
          return records ? resolveWithRecord(records, ref, platform, resolve, (m) => logger.info(m)) : resolve();
        },
      },
      { reload, started: (d) => (warming = opts.warmUp === false ? undefined : warmUp(d, logger.child('warm-up'))) },
    );
  } finally {
    // Its temp folder goes before the process exits (the warm-up stopped when the daemon did).
    await warming;
    if (ctx) await (await ctx).close();
    else await claim?.close();
    logger.close();
  }
}

/**
 * Once listening, the daemon runs a start's code on an image of its own (warm-up.ts) until a
 * client asks for work; then a full collection of what it left, as after loading the modules
 * (collectStartupGarbage), unless a client is already waiting.
 */
async function warmUp(d: Daemon, log: Logger): Promise<void> {
  d.warmUp = 'running';
  const r = await warmStartPath({ signal: d.workArrived, log: (m) => log.warn(m) });
  const ms = Math.round(r.steps.reduce((a, s) => a + s.ms, 0));
  const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
  const how = r.completed ? 'done' : `stopped (${r.stopped})`;
  // Stopped by the daemon's own stop: after its last words, so only for debugging.
  const level = d.workArrived.reason === 'stopping' ? 'debug' : 'info';
  log[level](
    `${how} in ${ms} ms (${formatSteps(r.steps)}), ${r.requests} requests to its own registry, rss ${rss} MiB`,
  );
  if (r.completed && !d.workArrived.aborted) collectStartupGarbage();
  d.warmUp = r.completed ? 'done' : 'stopped';
}

/**
 * The daemon's WebAssembly stays on V8's baseline compiler (Liftoff). The one wasm module it runs
 * is undici's HTTP parser (llhttp, one large function), and V8's dynamic tiering recompiles that
 * function with TurboFan as soon as it is hot: during the first registry requests after the daemon
 * starts, i.e. inside the first `dadi run`. That compile took ~40 MB of fresh memory (10,000 page
 * faults at ~15 µs each on these VMs) and 250-300 ms of CPU on the core the start's other
 * processes need (perf record -e page-faults on a cold bench:coldstart run). Liftoff code parses
 * a response's headers once and passes its body on as spans, so HTTP throughput does not depend on
 * it. Set before the first connection compiles the parser (undici compiles it lazily).
 */
function keepWasmOnBaselineCompiler(): void {
  setFlagsFromString('--no-wasm-dynamic-tiering');
  setFlagsFromString('--no-wasm-tier-up');
}

/**
 * One full garbage collection once the daemon has loaded its modules, before it listens. Without
 * it, V8's first mark-compact (old space grown by the start's ~20 MB of module code and garbage)
 * came during the first `dadi run` it served: 14 ms with the daemon's one thread stopped, in the
 * middle of the mount (--trace-gc, bench:coldstart cat at 1 Gbit/2 ms), besides a 5-7 ms
 * scavenge. Collected here it costs the same 14 ms once, before any request.
 */
function collectStartupGarbage(): void {
  // `gc` exists only in contexts made after --expose-gc: a new one hands it over.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  gc?.();
}

function logSettingsOf(c: DadiConfig) {
  return { level: c.logConfig.logLevel, path: c.logConfig.logPath };
}

function daemonSettingsOf(c: DadiConfig): DaemonSettings {
  return {
    backgroundPull: layerPullConfigOf(c),
    replayWorkers: c.prefetchConfig.concurrency,
    ext4Prefetch: c.prefetchConfig.ext4Metadata ? { maxFileBytes: c.prefetchConfig.fileReadahead } : undefined,
    onStop: c.daemon.onStop,
    drainTimeoutMs: c.daemon.drainTimeout * 1000,
  };
}

/** The registry client's messages into the log at their level. */
function registryLogOf(log: Logger) {
  return (level: 'trace' | 'debug' | 'warn', msg: string, fields?: Record<string, unknown>) => log[level](msg, fields);
}

/**
 * The agent's settings from the config file's p2pConfig (overlaybd's names): on when `enable` and
 * a root are set. Only the first root is used for now; without `address` the agent listens on
 * loopback only (children elsewhere cannot reach it and are moved on by the root).
 */
function p2pFromConfig(c: { enable: boolean; address?: string; roots: string[] }): P2PSettings | undefined {
  if (!c.enable || c.roots.length === 0) return undefined;
  return { root: c.roots[0]!, listen: c.address ?? '127.0.0.1:0' };
}
