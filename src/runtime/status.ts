// The daemon's figures as one plain object: what `dadi status` prints and what `/metrics` exports
// (daemon-metrics.ts reads the same object, so a person, a script and Prometheus see one set of
// numbers). Built from the daemon's parts by `daemonStatus`; no I/O here.

import type { CacheStats } from '../cache/stats.js';
import type { P2PCountersSnapshot } from '../p2p/counters.js';
import type { RegistryStats } from '../registry/client.js';
import type { ContainerRecord } from './container.js';
import type { DeviceInfo } from './protocol.js';

/** Where fetched blob bytes came from: the registry, or (P2P) the root or a peer. */
export const FETCH_SOURCES = ['registry', 'root', 'peer'] as const;
export type FetchSource = (typeof FETCH_SOURCES)[number];

export const CONTAINER_STATES = ['created', 'running', 'exited'] as const;

/** Kinds of errors counted by `dadi_errors_total` (and `errors` here). */
export type ErrorKind =
  | 'request'
  | 'fetch'
  | 'verify'
  | 'cache_write'
  | 'cache_read'
  | 'pull'
  | 'replay'
  | 'unhandled_rejection'
  | 'uncaught_exception';

export interface DaemonStatus {
  daemon: {
    pid: number;
    protocolVersion: number;
    stateDir: string;
    cacheDir: string | null;
    startedAt: string;
    uptimeSeconds: number;
    /** Where Prometheus scrapes this daemon; null when metrics are off. */
    metricsUrl: string | null;
  };
  /** Protocol requests by op: being handled now, and handled since the start (failures included). */
  requests: { inFlight: Record<string, number>; total: Record<string, number> };
  devices: DeviceStatus[];
  /** Containers of this state folder by state. */
  containers: Record<(typeof CONTAINER_STATES)[number], number>;
  /** The block cache this daemon owns; null until its first remote read opens it, or without one. */
  cache: CacheStatus | null;
  /** Its registry client; null until the first remote read. */
  registry: RegistryStatus | null;
  /** Blob range fetches by source: count, bytes, and their latency histogram (cumulative buckets). */
  fetches: FetchStatus[];
  /** The P2P agent's counters (chunks by source, failures, fallbacks, pushes, serving); null without P2P. */
  p2p: P2PCountersSnapshot | null;
  /** Errors since the start, by kind (and DadiError code for failed requests). */
  errors: Array<{ kind: ErrorKind; code: string; count: number }>;
}

export interface DeviceStatus {
  id: string;
  target: string;
  rw: boolean;
  label: string | null;
  /** Bytes the kernel read / wrote through the device. */
  readBytes: number;
  writtenBytes: number;
  trace: TraceStatus | null;
  /** Background pulls of its registry layers into the cache. */
  pulls: PullStatus[];
}

export interface TraceStatus {
  mode: 'replay' | 'record';
  source: string | null;
  /** Replay: reads planned, done, failed, their bytes; whether every worker stopped. */
  plannedReads: number;
  doneReads: number;
  failedReads: number;
  bytes: number;
  finished: boolean;
  /** Record: reads recorded so far. */
  recordedReads: number;
}

export interface PullStatus {
  layer: string;
  state: string;
  fetchedBytes: number;
  /** The blob's size (what a complete pull covers). */
  sizeBytes: number;
}

export interface CacheStatus {
  dir: string;
  capacityBytes: number;
  usageBytes: number;
  entries: number;
  reads: number;
  readBytes: number;
  hitBytes: number;
  hitPages: number;
  missBytes: number;
  missPages: number;
  /** Source fetches (and bytes) by why they were made. */
  fetches: { read: number; readahead: number; background: number };
  fetchBytes: { read: number; readahead: number; background: number };
  fetchesInFlight: { read: number; readahead: number; background: number };
  evictedBytes: number;
  blobEvictions: number;
}

export interface RegistryStatus {
  requests: number;
  retries: number;
  /** Response body bytes received from registries: everything they served this daemon. */
  responseBytes: number;
  rangeReads: number;
  rangeBytes: number;
}

export interface FetchStatus {
  source: FetchSource;
  count: number;
  bytes: number;
  sumSeconds: number;
  /** Cumulative: fetches that took at most `le` seconds (the last is +Inf, as "Infinity" in JSON: null). */
  buckets: Array<{ le: number | null; count: number }>;
}

/** What the daemon knows, gathered by the daemon; `daemonStatus` shapes it. */
export interface StatusParts {
  pid: number;
  protocolVersion: number;
  stateDir: string;
  cacheDir?: string;
  startedAt: Date;
  metricsUrl?: string;
  requests: { inFlight: Map<string, number>; total: Map<string, number> };
  devices: DeviceInfo[];
  containers: Array<Pick<ContainerRecord, 'status'>>;
  cache?: CacheStats;
  registry?: RegistryStats;
  p2p?: P2PCountersSnapshot;
  fetches: FetchStatus[];
  /** Counted by the daemon itself (requests, pulls, replays of gone devices), `kind code` → count. */
  errors: Map<string, number>;
}

export function daemonStatus(p: StatusParts, now = new Date()): DaemonStatus {
  const containers = { created: 0, running: 0, exited: 0 };
  for (const c of p.containers) containers[c.status]++;
  const errors = new Map(p.errors);
  const add = (kind: ErrorKind, n: number) => {
    if (n > 0) errors.set(`${kind} `, (errors.get(`${kind} `) ?? 0) + n);
  };
  if (p.cache) {
    add('fetch', p.cache.fetchErrors);
    add('verify', p.cache.verifyFailures);
    add('cache_write', p.cache.persistErrors);
    add('cache_read', p.cache.cacheReadErrors);
  }
  const devices = p.devices.map(deviceStatus);
  for (const d of devices) add('replay', d.trace?.failedReads ?? 0);
  return {
    daemon: {
      pid: p.pid,
      protocolVersion: p.protocolVersion,
      stateDir: p.stateDir,
      cacheDir: p.cacheDir ?? null,
      startedAt: p.startedAt.toISOString(),
      uptimeSeconds: Math.max(0, (now.getTime() - p.startedAt.getTime()) / 1000),
      metricsUrl: p.metricsUrl ?? null,
    },
    requests: { inFlight: Object.fromEntries(p.requests.inFlight), total: Object.fromEntries(p.requests.total) },
    devices,
    containers,
    cache: p.cache ? cacheStatus(p.cache) : null,
    registry: p.registry ? registryStatus(p.registry) : null,
    fetches: p.fetches,
    p2p: p.p2p ?? null,
    errors: [...errors]
      .map(([key, count]) => {
        const [kind, code = ''] = key.split(' ') as [ErrorKind, string?];
        return { kind, code, count };
      })
      .sort((a, b) => a.kind.localeCompare(b.kind) || a.code.localeCompare(b.code)),
  };
}

/** The key of a counted error in StatusParts.errors. */
export function errorKey(kind: ErrorKind, code = ''): string {
  return `${kind} ${code}`;
}

function deviceStatus(d: DeviceInfo): DeviceStatus {
  const r = d.trace?.replay;
  return {
    id: d.id,
    target: d.target,
    rw: d.rw,
    label: d.label ?? null,
    readBytes: d.bytesRead,
    writtenBytes: d.bytesWritten,
    trace: d.trace
      ? {
          mode: d.trace.mode,
          source: d.trace.source ?? null,
          plannedReads: r?.planned ?? 0,
          doneReads: r?.reads ?? 0,
          failedReads: r?.failed ?? 0,
          bytes: r?.bytes ?? 0,
          finished: r?.finished ?? false,
          recordedReads: d.trace.recorded ?? 0,
        }
      : null,
    pulls: d.layers.flatMap((l) =>
      l.pull
        ? [{ layer: l.ref, state: l.pull.state, fetchedBytes: l.pull.bytesFetched, sizeBytes: l.pull.size ?? 0 }]
        : [],
    ),
  };
}

function cacheStatus(c: CacheStats): CacheStatus {
  // The totals count every attempt, the parts only successes: a read's share is what is left.
  const rest = (all: number, ...parts: number[]) =>
    Math.max(
      0,
      parts.reduce((a, p) => a - p, all),
    );
  return {
    dir: c.dir,
    capacityBytes: c.capacity,
    usageBytes: c.usage,
    entries: c.entries,
    reads: c.reads,
    readBytes: c.readBytes,
    hitBytes: c.hitBytes,
    hitPages: c.hitPages,
    missBytes: c.missBytes,
    missPages: c.missPages,
    fetches: {
      read: rest(c.fetches, c.readaheadFetches, c.backgroundFetches),
      readahead: c.readaheadFetches,
      background: c.backgroundFetches,
    },
    fetchBytes: {
      read: rest(c.fetchBytes, c.readaheadBytes, c.backgroundBytes),
      readahead: c.readaheadBytes,
      background: c.backgroundBytes,
    },
    fetchesInFlight: {
      read: rest(c.inflight, c.readaheadInflight, c.backgroundInflight),
      readahead: c.readaheadInflight,
      background: c.backgroundInflight,
    },
    evictedBytes: c.evictedBytes,
    blobEvictions: c.blobEvictions,
  };
}

function registryStatus(r: RegistryStats): RegistryStatus {
  return {
    requests: r.requests,
    retries: r.retries,
    responseBytes: r.responseBytes,
    rangeReads: r.rangeReads,
    rangeBytes: r.rangeBytes,
  };
}
