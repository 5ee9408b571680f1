// The metrics endpoint and its address: loopback unless a host is named, clear errors naming the
// flag or key, only GET /metrics answered; and DaemonMetrics exporting exactly the status it reports.

import { describe, expect, it } from 'vitest';
import { newCounters } from '../cache/stats.js';
import { DaemonMetrics } from './daemon-metrics.js';
import { metricsUrl, parseMetricsAddress, serveMetrics } from './metrics-server.js';
import { daemonStatus, errorKey } from './status.js';

describe('metrics address', () => {
  it('parses HOST:PORT, [v6]:PORT, :PORT and PORT (loopback)', () => {
    expect(parseMetricsAddress('0.0.0.0:9100', 'x')).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(parseMetricsAddress('[::1]:9100', 'x')).toEqual({ host: '::1', port: 9100 });
    expect(parseMetricsAddress(':9100', 'x')).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseMetricsAddress('9100', 'x')).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(metricsUrl({ host: '::1', port: 1 })).toBe('http://[::1]:1/metrics');
  });

  it('names the flag or key and the bad value', () => {
    for (const bad of ['localhost', 'h:70000', 'h:p', 'a:b:9', '']) {
      expect(() => parseMetricsAddress(bad, 'metrics.address')).toThrow(`metrics.address: "${bad}" is not HOST:PORT`);
    }
  });
});

describe('metrics endpoint', () => {
  it('serves GET /metrics only, with the content type given', async () => {
    const s = await serveMetrics({ host: '127.0.0.1', port: 0 }, async () => 'a_metric 1\n', 'text/plain; x=1');
    try {
      const r = await fetch(s.url);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/plain; x=1');
      expect(await r.text()).toBe('a_metric 1\n');
      expect((await fetch(s.url.replace('/metrics', '/other'))).status).toBe(404);
      expect((await fetch(s.url, { method: 'POST' })).status).toBe(404);
    } finally {
      await s.close();
    }
  });

  it('a taken port fails naming the address', async () => {
    const a = await serveMetrics({ host: '127.0.0.1', port: 0 }, async () => '', 'text/plain');
    try {
      await expect(serveMetrics(a.address, async () => '', 'text/plain')).rejects.toThrow(
        `metrics address 127.0.0.1:${a.address.port}: `,
      );
    } finally {
      await a.close();
    }
  });
});

describe('DaemonMetrics', () => {
  it('exports the figures of its status, and the fetch histogram it observed', async () => {
    const m = new DaemonMetrics();
    const cache = {
      ...newCounters(),
      dir: '/c',
      capacity: 100,
      usage: 40,
      entries: 2,
      openBlobs: 1,
      blobEvictions: 0,
      pendingBytes: 0,
    };
    Object.assign(cache, {
      reads: 3,
      hitBytes: 7,
      missBytes: 11,
      fetches: 5,
      fetchBytes: 900,
      readaheadFetches: 1,
      readaheadBytes: 100,
      fetchErrors: 2,
    });
    const errors = new Map([[errorKey('request', 'ENOTFOUND'), 3]]);
    m.setSource(async () =>
      daemonStatus({
        pid: 1,
        protocolVersion: 1,
        stateDir: '/s',
        startedAt: new Date(0),
        requests: { inFlight: new Map([['mount', 1]]), total: new Map([['mount', 4]]) },
        devices: [],
        containers: [{ status: 'running' }, { status: 'exited' }, { status: 'exited' }],
        cache,
        fetches: [],
        errors,
        p2p: {
          bytes: { registry: 1, root: 2, peer: 3 },
          requests: { registry: 1, root: 1, peer: 1 },
          failures: { registry: 0, root: 4, peer: 0 },
          corruptChunks: 5,
          registryFallbacks: 6,
          reparents: 0,
          hedgedRequests: 0,
          pushedChunks: 0,
          pushedBytes: 0,
          receivedPushes: 0,
          servedBytes: 7,
          servedRequests: 1,
        },
      }),
    );
    m.observeFetch('registry', 1000, 0.003);
    m.observeFetch('registry', 24, 0.2);
    const text = await m.exposition();
    const status = await m.status();
    expect(text).toContain('dadi_cache_hit_bytes_total 7\n');
    expect(text).toContain('dadi_cache_miss_bytes_total 11\n');
    expect(text).toContain('dadi_cache_fetch_bytes_total{reason="read"} 800\n');
    expect(text).toContain('dadi_cache_fetch_bytes_total{reason="readahead"} 100\n');
    expect(text).toContain('dadi_containers{state="exited"} 2\n');
    expect(text).toContain('dadi_daemon_requests_in_flight{op="mount"} 1\n');
    expect(text).toContain('dadi_errors_total{kind="request",code="ENOTFOUND"} 3\n');
    expect(text).toContain('dadi_errors_total{kind="fetch",code=""} 2\n');
    expect(text).toContain('dadi_fetch_duration_seconds_bucket{le="0.005",source="registry"} 1\n');
    expect(text).toContain('dadi_fetch_duration_seconds_bucket{le="+Inf",source="registry"} 2\n');
    expect(text).toContain('dadi_fetch_bytes_total{source="registry"} 1024\n');
    expect(text).toContain('dadi_fetch_duration_seconds_count{source="root"} 0\n');
    expect(text).toContain('dadi_registry_response_bytes_total 0\n');
    expect(text).toContain('dadi_p2p_chunk_bytes_total{source="peer"} 3\n');
    expect(text).toContain('dadi_p2p_chunk_failures_total{source="root"} 4\n');
    expect(text).toContain('dadi_p2p_corrupt_chunks_total 5\n');
    expect(text).toContain('dadi_p2p_registry_fallbacks_total 6\n');
    expect(text).toContain('dadi_p2p_served_bytes_total 7\n');
    expect(status.p2p?.bytes.root).toBe(2);
    expect(status.cache?.fetchBytes).toEqual({ read: 800, readahead: 100, background: 0 });
    expect(status.errors).toEqual([
      { kind: 'fetch', code: '', count: 2 },
      { kind: 'request', code: 'ENOTFOUND', count: 3 },
    ]);
    const reg = status.fetches.find((f) => f.source === 'registry')!;
    expect(reg).toMatchObject({ count: 2, bytes: 1024 });
    expect(reg.sumSeconds).toBeCloseTo(0.203);
    expect(reg.buckets.find((b) => b.le === 0.005)?.count).toBe(1);
    expect(reg.buckets.at(-1)).toEqual({ le: null, count: 2 });
  });
});
