// The daemon's Prometheus metrics (prom-client). Every figure but the fetch latency comes from one
// DaemonStatus snapshot taken per scrape (status.ts), the same object `dadi status` prints; the
// fetch histogram is observed here as fetches complete and read back into the status. The list of
// metrics is documented in docs/operations.md ("Metrics"); keep the two in step.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { CONTAINER_STATES, type DaemonStatus, FETCH_SOURCES, type FetchSource, type FetchStatus } from './status.js';

/** Fetch latency buckets in seconds: a loopback range GET takes ~4 ms, a far registry ~100 ms. */
export const FETCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;
type Series = Array<[Labels, number]>;

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly fetchSeconds: Histogram<'source'>;
  private readonly fetchBytes = new Map<FetchSource, number>();
  private source: (() => Promise<Omit<DaemonStatus, 'fetches'>>) | undefined;
  /** The snapshot of the scrape in progress (collect callbacks read it). */
  private current: DaemonStatus | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.fetchSeconds = new Histogram({
      name: 'dadi_fetch_duration_seconds',
      help: 'Time of one blob range fetch (retries included), by source',
      labelNames: ['source'],
      buckets: FETCH_BUCKETS,
      registers: [this.registry],
    });
    for (const source of FETCH_SOURCES) this.fetchSeconds.zero({ source });
    this.defineFromStatus();
  }

  /** Where the figures come from (the daemon, once it runs). */
  setSource(source: () => Promise<Omit<DaemonStatus, 'fetches'>>): void {
    this.source = source;
  }

  /** A blob range fetch completed: `bytes` from `source` in `seconds`. */
  observeFetch(source: FetchSource, bytes: number, seconds: number): void {
    this.fetchSeconds.observe({ source }, seconds);
    this.fetchBytes.set(source, (this.fetchBytes.get(source) ?? 0) + bytes);
  }

  /** The daemon's figures with the fetch histograms (the `status` request). */
  async status(): Promise<DaemonStatus> {
    if (!this.source) throw new Error('DaemonMetrics: no source set');
    return { ...(await this.source()), fetches: await this.fetchStatus() };
  }

  /** The Prometheus text exposition of one consistent snapshot. */
  async exposition(): Promise<string> {
    this.current = await this.status();
    try {
      return await this.registry.metrics();
    } finally {
      this.current = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async fetchStatus(): Promise<FetchStatus[]> {
    const got = await this.fetchSeconds.get();
    return FETCH_SOURCES.map((source) => {
      const mine = got.values.filter((v) => v.labels.source === source);
      const pick = (suffix: string) => mine.find((v) => v.metricName === `dadi_fetch_duration_seconds${suffix}`);
      return {
        source,
        count: pick('_count')?.value ?? 0,
        bytes: this.fetchBytes.get(source) ?? 0,
        sumSeconds: pick('_sum')?.value ?? 0,
        buckets: mine
          .filter((v) => v.metricName?.endsWith('_bucket'))
          .map((v) => {
            const le = (v.labels as { le?: string | number }).le;
            return { le: le === '+Inf' ? null : Number(le), count: v.value };
          }),
      };
    });
  }

  /** Gauges and counters whose values are read from the scrape's snapshot. */
  private defineFromStatus(): void {
    const gauge = (name: string, help: string, labelNames: string[], values: (s: DaemonStatus) => Series) => {
      const snapshot = () => this.current;
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          const s = snapshot();
          this.reset();
          if (s) for (const [labels, v] of values(s)) this.set(labels, v);
        },
      });
    };
    // Counters too are snapshots of counts kept elsewhere: reset, then set through inc.
    const counter = (name: string, help: string, labelNames: string[], values: (s: DaemonStatus) => Series) => {
      const snapshot = () => this.current;
      new Counter({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          const s = snapshot();
          this.reset();
          if (s) for (const [labels, v] of values(s)) this.inc(labels, v);
        },
      });
    };
    const one = (v: number | undefined): Series => (v === undefined ? [] : [[{}, v]]);
    const byOp = (m: Record<string, number>): Series => Object.entries(m).map(([op, n]) => [{ op }, n]);
    const reasons = (m: { read: number; readahead: number; background: number } | undefined): Series =>
      m ? Object.entries(m).map(([reason, n]) => [{ reason }, n]) : [];

    gauge('dadi_daemon_start_time_seconds', 'When the daemon started (Unix time)', [], (s) =>
      one(Date.parse(s.daemon.startedAt) / 1000),
    );
    gauge('dadi_daemon_requests_in_flight', 'Protocol requests being handled, by op', ['op'], (s) =>
      byOp(s.requests.inFlight),
    );
    counter('dadi_daemon_requests_total', 'Protocol requests handled (failures included), by op', ['op'], (s) =>
      byOp(s.requests.total),
    );
    gauge('dadi_devices', 'Mounted devices, by mode (ro, rw)', ['mode'], (s) => [
      [{ mode: 'ro' }, s.devices.filter((d) => !d.rw).length],
      [{ mode: 'rw' }, s.devices.filter((d) => d.rw).length],
    ]);
    gauge('dadi_containers', "Containers of the daemon's state folder, by state", ['state'], (s) =>
      CONTAINER_STATES.map((state) => [{ state }, s.containers[state]]),
    );
    gauge('dadi_device_read_bytes', 'Bytes the kernel read through a device', ['device'], (s) =>
      s.devices.map((d) => [{ device: d.id }, d.readBytes]),
    );
    gauge('dadi_device_written_bytes', 'Bytes the kernel wrote through a device', ['device'], (s) =>
      s.devices.map((d) => [{ device: d.id }, d.writtenBytes]),
    );

    const cache = (f: (c: NonNullable<DaemonStatus['cache']>) => number) => (s: DaemonStatus) =>
      one(s.cache ? f(s.cache) : undefined);
    counter(
      'dadi_cache_reads_total',
      'Reads through the block cache',
      [],
      cache((c) => c.reads),
    );
    counter(
      'dadi_cache_read_bytes_total',
      'Bytes read through the block cache',
      [],
      cache((c) => c.readBytes),
    );
    counter(
      'dadi_cache_hit_bytes_total',
      'Bytes served from the cache files',
      [],
      cache((c) => c.hitBytes),
    );
    counter(
      'dadi_cache_hit_pages_total',
      'Cache pages served from the cache files',
      [],
      cache((c) => c.hitPages),
    );
    counter(
      'dadi_cache_miss_bytes_total',
      'Bytes served by a fetch from the source',
      [],
      cache((c) => c.missBytes),
    );
    counter(
      'dadi_cache_miss_pages_total',
      'Cache pages served by a fetch',
      [],
      cache((c) => c.missPages),
    );
    counter('dadi_cache_fetches_total', 'Source fetches of the cache, by reason', ['reason'], (s) =>
      reasons(s.cache?.fetches),
    );
    counter('dadi_cache_fetch_bytes_total', 'Bytes the cache fetched from sources, by reason', ['reason'], (s) =>
      reasons(s.cache?.fetchBytes),
    );
    gauge('dadi_cache_fetches_in_flight', 'Source fetches of the cache in flight, by reason', ['reason'], (s) =>
      reasons(s.cache?.fetchesInFlight),
    );
    gauge(
      'dadi_cache_usage_bytes',
      'Bytes the cache files occupy',
      [],
      cache((c) => c.usageBytes),
    );
    gauge(
      'dadi_cache_capacity_bytes',
      'Capacity of the block cache',
      [],
      cache((c) => c.capacityBytes),
    );
    gauge(
      'dadi_cache_blobs',
      'Blobs with data in the cache',
      [],
      cache((c) => c.entries),
    );
    counter(
      'dadi_cache_evicted_bytes_total',
      'Bytes dropped from the cache',
      [],
      cache((c) => c.evictedBytes),
    );

    const reg = (f: (r: NonNullable<DaemonStatus['registry']>) => number) => (s: DaemonStatus) =>
      one(s.registry ? f(s.registry) : undefined);
    counter(
      'dadi_registry_requests_total',
      'HTTP requests sent to registries',
      [],
      reg((r) => r.requests),
    );
    counter(
      'dadi_registry_retries_total',
      'Registry requests retried',
      [],
      reg((r) => r.retries),
    );
    counter(
      'dadi_registry_response_bytes_total',
      'Response body bytes received from registries (blobs, manifests, tokens, errors)',
      [],
      reg((r) => r.responseBytes),
    );
    counter(
      'dadi_registry_range_reads_total',
      'Ranged blob reads from registries',
      [],
      reg((r) => r.rangeReads),
    );
    counter(
      'dadi_registry_range_bytes_total',
      'Bytes of ranged blob reads',
      [],
      reg((r) => r.rangeBytes),
    );
    counter('dadi_fetch_bytes_total', 'Bytes of blob range fetches, by source', ['source'], (s) =>
      s.fetches.map((f) => [{ source: f.source }, f.bytes]),
    );

    const trace = (f: (t: NonNullable<DaemonStatus['devices'][number]['trace']>) => number) => (s: DaemonStatus) =>
      s.devices.flatMap((d): Series => (d.trace?.mode === 'replay' ? [[{ device: d.id }, f(d.trace)]] : []));
    gauge(
      'dadi_trace_replay_planned_reads',
      'Reads a trace replay planned',
      ['device'],
      trace((t) => t.plannedReads),
    );
    gauge(
      'dadi_trace_replay_done_reads',
      'Reads a trace replay has done',
      ['device'],
      trace((t) => t.doneReads),
    );
    gauge(
      'dadi_trace_replay_bytes',
      'Bytes a trace replay has read',
      ['device'],
      trace((t) => t.bytes),
    );
    gauge(
      'dadi_trace_replay_finished',
      '1 once every replay worker stopped',
      ['device'],
      trace((t) => +t.finished),
    );
    gauge('dadi_trace_recorded_reads', 'Reads a trace recording has recorded', ['device'], (s) =>
      s.devices.flatMap((d): Series => (d.trace?.mode === 'record' ? [[{ device: d.id }, d.trace.recordedReads]] : [])),
    );

    const pulls = (f: (p: DaemonStatus['devices'][number]['pulls'][number]) => number) => (s: DaemonStatus) =>
      s.devices.flatMap((d) => d.pulls.map((p): [Labels, number] => [{ device: d.id, layer: p.layer }, f(p)]));
    gauge(
      'dadi_pull_fetched_bytes',
      'Bytes a background layer pull fetched',
      ['device', 'layer'],
      pulls((p) => p.fetchedBytes),
    );
    gauge(
      'dadi_pull_size_bytes',
      'Size of a layer being pulled in the background',
      ['device', 'layer'],
      pulls((p) => p.sizeBytes),
    );
    gauge('dadi_pull_layers', 'Background layer pulls, by state', ['state'], (s) => {
      const n = new Map<string, number>();
      for (const d of s.devices) for (const p of d.pulls) n.set(p.state, (n.get(p.state) ?? 0) + 1);
      return [...n].map(([state, v]) => [{ state }, v]);
    });

    const p2p = (f: (p: NonNullable<DaemonStatus['p2p']>) => Record<string, number>) => (s: DaemonStatus) =>
      s.p2p ? Object.entries(f(s.p2p)).map(([source, n]): [Labels, number] => [{ source }, n]) : [];
    const p2pOne = (f: (p: NonNullable<DaemonStatus['p2p']>) => number) => (s: DaemonStatus) =>
      one(s.p2p ? f(s.p2p) : undefined);
    counter(
      'dadi_p2p_chunk_bytes_total',
      'P2P: bytes of verified chunks received, by source',
      ['source'],
      p2p((p) => p.bytes),
    );
    counter(
      'dadi_p2p_chunks_total',
      'P2P: chunk requests that succeeded, by source',
      ['source'],
      p2p((p) => p.requests),
    );
    counter(
      'dadi_p2p_chunk_failures_total',
      'P2P: chunk requests that failed, by source',
      ['source'],
      p2p((p) => p.failures),
    );
    counter(
      'dadi_p2p_corrupt_chunks_total',
      'P2P: chunks from a peer or the root that failed verification',
      [],
      p2pOne((p) => p.corruptChunks),
    );
    counter(
      'dadi_p2p_registry_fallbacks_total',
      'P2P: reads sent to the registry because the root could not be used',
      [],
      p2pOne((p) => p.registryFallbacks),
    );
    counter(
      'dadi_p2p_reparents_total',
      'P2P: times this host got a new parent',
      [],
      p2pOne((p) => p.reparents),
    );
    counter(
      'dadi_p2p_hedged_requests_total',
      'P2P: chunk requests to a slow peer also sent to the next hop up',
      [],
      p2pOne((p) => p.hedgedRequests),
    );
    counter(
      'dadi_p2p_pushed_bytes_total',
      'P2P: bytes pushed to children',
      [],
      p2pOne((p) => p.pushedBytes),
    );
    counter(
      'dadi_p2p_served_bytes_total',
      'P2P: bytes served to children and proxy clients',
      [],
      p2pOne((p) => p.servedBytes),
    );

    counter('dadi_errors_total', 'Errors by kind (and DadiError code of failed requests)', ['kind', 'code'], (s) =>
      s.errors.map((e) => [{ kind: e.kind, code: e.code }, e.count]),
    );
  }
}
