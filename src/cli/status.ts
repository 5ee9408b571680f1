// `dadi status [--json]`: the running daemon's figures — the same object its /metrics exports —
// as a table for a person or as JSON (docs/json-output.md) for a script.

import type { Command } from 'commander';
import { DaemonClient } from '../runtime/client.js';
import type { DaemonStatus, FetchStatus } from '../runtime/status.js';
import { formatSize } from '../util/size.js';
import { printFields, printJson } from './output.js';

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description("the daemon's figures: requests, devices, containers, cache, registry bytes, fetch latency, errors")
    .option('--state <dir>', 'daemon state folder (default: $DADI_STATE or /run/dadi)')
    .option('--json', 'print the figures as JSON')
    .action(async (o: { state?: string; json?: boolean }) => {
      const client = await DaemonClient.connect({ stateDir: o.state, autoStart: false });
      const s = await client.status();
      if (o.json) printJson(s);
      else printFields(statusRows(s));
    });
}

/** The status as [label, text] rows. */
export function statusRows(s: DaemonStatus): Array<[string, string]> {
  const d = s.daemon;
  const sum = (m: Record<string, number>) => Object.values(m).reduce((a, n) => a + n, 0);
  const rows: Array<[string, string]> = [
    ['daemon', `pid ${d.pid}, up ${formatDuration(d.uptimeSeconds)}, state ${d.stateDir}`],
    ['metrics', d.metricsUrl ?? 'off (dadi daemon --metrics-address HOST:PORT)'],
    ['requests', `${sum(s.requests.inFlight)} in flight, ${sum(s.requests.total)} handled`],
    [
      'devices',
      `${s.devices.length} (${s.devices.filter((x) => x.rw).length} rw); containers ${s.containers.running} running, ` +
        `${s.containers.exited} exited, ${s.containers.created} created`,
    ],
  ];
  const c = s.cache;
  if (c) {
    const served = c.hitBytes + c.missBytes;
    rows.push(
      [
        'cache',
        `${formatSize(c.usageBytes)} of ${formatSize(c.capacityBytes)}, ${c.entries} blob${c.entries === 1 ? '' : 's'} (${c.dir})`,
      ],
      [
        'cache reads',
        `${c.reads} reads, ${formatSize(c.readBytes)}: hits ${formatSize(c.hitBytes)} (${c.hitPages} pages), ` +
          `misses ${formatSize(c.missBytes)} (${c.missPages} pages)` +
          (served > 0 ? `, ${((100 * c.hitBytes) / served).toFixed(1)}% hit` : ''),
      ],
      [
        'cache fetches',
        `${formatSize(c.fetchBytes.read)} for reads, ${formatSize(c.fetchBytes.readahead)} readahead, ` +
          `${formatSize(c.fetchBytes.background)} background; in flight ${sum(c.fetchesInFlight)}`,
      ],
    );
  } else rows.push(['cache', d.cacheDir ? `${d.cacheDir} (not opened yet)` : 'none']);
  const r = s.registry;
  rows.push([
    'registry',
    r
      ? `${formatSize(r.responseBytes)} received (${r.responseBytes} bytes) in ${r.requests} requests, ${r.retries} retries`
      : 'not used yet',
  ]);
  for (const f of s.fetches) if (f.count > 0) rows.push([`fetch ${f.source}`, fetchLine(f)]);
  const p = s.p2p;
  if (p) {
    const failures = sum(p.failures);
    rows.push([
      'p2p',
      `chunks: ${formatSize(p.bytes.root)} from the root, ${formatSize(p.bytes.peer)} from peers, ` +
        `${formatSize(p.bytes.registry)} from the registry (${p.registryFallbacks} fallbacks); ` +
        `${failures} failed, ${p.corruptChunks} corrupt; served ${formatSize(p.servedBytes)}`,
    ]);
  }
  for (const dev of s.devices) {
    const t = dev.trace;
    if (t?.mode === 'replay') {
      rows.push([
        `replay ${dev.id}`,
        `${t.doneReads} of ${t.plannedReads} reads, ${formatSize(t.bytes)}` +
          `${t.failedReads ? `, ${t.failedReads} failed` : ''}, ${t.finished ? 'finished' : 'running'}`,
      ]);
    } else if (t?.mode === 'record') rows.push([`record ${dev.id}`, `${t.recordedReads} reads recorded`]);
    for (const p of dev.pulls) {
      const pct = p.sizeBytes > 0 ? ` (${((100 * p.fetchedBytes) / p.sizeBytes).toFixed(0)}%)` : '';
      rows.push([`pull ${dev.id}`, `${p.layer}: ${p.state}, ${formatSize(p.fetchedBytes)}${pct}`]);
    }
  }
  rows.push([
    'errors',
    s.errors.length ? s.errors.map((e) => `${e.kind}${e.code ? ` ${e.code}` : ''} ${e.count}`).join(', ') : 'none',
  ]);
  return rows;
}

/** `120 fetches, 4.5 MiB, mean 12.3 ms, p50 ≤ 10 ms, p99 ≤ 50 ms` (quantiles as bucket bounds). */
function fetchLine(f: FetchStatus): string {
  const q = (p: number) => {
    const b = f.buckets.find((x) => x.count >= p * f.count);
    return b?.le == null ? '> the largest bucket' : `≤ ${formatMs(b.le)}`;
  };
  return `${f.count} fetches, ${formatSize(f.bytes)}, mean ${formatMs(f.sumSeconds / f.count)}, p50 ${q(0.5)}, p99 ${q(0.99)}`;
}

function formatMs(seconds: number): string {
  const ms = seconds * 1000;
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
