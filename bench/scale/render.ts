// The scale benchmark's report: the JSON's shape, its markdown and a small SVG (time until 50/90/
// 99/100% of containers started against the number of hosts, log scale). Not the runs (run.ts).

import type { ScenarioConfig, ScenarioResult } from './scenario.js';
import type { ValidationRow } from './validate.js';

type Result = Omit<ScenarioResult, 'config'> & { config: Partial<ScenarioConfig> };

export interface SweepRow {
  sweep: string;
  value: string;
  result: Result;
}

/** What bench/scale/agents.ts measured with real processes. */
export interface RealAgents {
  agents: number;
  blob_bytes: number;
  all_finished_s: number;
  root_cpu_s: number;
  root_rss_mb_idle: number;
  root_rss_mb_peak: number;
  root_cpu_core_per_1000_peers: number;
  root_mb_per_1000_peers: number;
  /** Bytes agents read from the registry themselves (fallbacks when the root was unusable). */
  registry_bytes: number;
  note: string;
}

export interface ScaleReport {
  name: string;
  title: string;
  date: string;
  node: string;
  sim_hosts: number;
  sim_containers: number;
  sim_all_started_s: number;
  sim_registry_egress_ratio: number;
  sim_all_started_s_with_failures: number | null;
  validation_max_rel_error: number | null;
  real_agents: number | null;
  root_cpu_core_per_1000_peers: number | null;
  root_mb_per_1000_peers: number | null;
  model: Record<string, unknown>;
  headline: Result;
  scaling: { hosts: number; calibrated: Result; ideal: Result }[];
  sweeps: SweepRow[];
  failures: SweepRow[];
  validation: ValidationRow[];
  validation_note: string;
  real: RealAgents | null;
  total_s: number;
}

const s3 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3);
const mb = (x: number) => (x / 1e6).toFixed(1);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function goal(what: string, measured: string, limit: string, met: boolean | null): string {
  return `| ${what} | ${measured} | ${limit} | ${met === null ? 'not measured' : met ? 'met' : '**missed**'} |`;
}

export function renderMarkdown(r: ScaleReport): string {
  const m = r.model as { warm_start_s: number; host_chunk_s: number; host_chunk_source: string; needed_bytes: number };
  const fail = r.sim_all_started_s_with_failures;
  const out = [
    `## ${r.title}`,
    '',
    'A discrete-event simulation (bench/scale) drives the P2P decision code that the root and the agents run',
    '(src/p2p: `Tracker`, `ChunkFetch`, `ChunkBook`, `PushPlanner`) in simulated time over a max-min fair',
    'network model. Each container replays the blob reads recorded from a real cold start of the Debian +',
    `python3 image (\`dadi record-trace\`; ${mb(m.needed_bytes)} MB of 1 MiB chunks), with the measured warm start`,
    `(${m.warm_start_s.toFixed(2)} s) spread between its reads, and each host does ${(m.host_chunk_s * 1000).toFixed(1)} ms of work per`,
    `received chunk (${m.host_chunk_source}). Defaults: 10 Gbit/s host and root NICs, a 1 Gbit/s registry`,
    '(4 ms per request), 0.1 ms per hop, fan-out 4, trace prefetch (16 workers), pull-push on, one root.',
    '',
    '| goal | result | limit | |',
    '|---|---|---|---|',
    goal(
      `all ${r.sim_containers} containers on ${r.sim_hosts} hosts started`,
      `${s3(r.sim_all_started_s)} s`,
      '≤ 2 s',
      r.sim_all_started_s <= 2,
    ),
    goal(
      'registry egress ÷ one copy of the needed bytes',
      s3(r.sim_registry_egress_ratio),
      '≤ 1.05',
      r.sim_registry_egress_ratio <= 1.05,
    ),
    goal(
      '5% of hosts die mid-transfer: all started ÷ fault-free',
      fail === null ? 'not all started' : s3(fail / r.sim_all_started_s),
      '≤ 1.5',
      fail === null ? false : fail / r.sim_all_started_s <= 1.5,
    ),
    goal(
      'simulated vs measured (time, egress; 20 and 50 hosts), worst relative error',
      r.validation_max_rel_error === null ? '—' : pct(r.validation_max_rel_error),
      '≤ 15%',
      r.validation_max_rel_error === null ? null : r.validation_max_rel_error <= 0.15,
    ),
    goal(
      'root CPU for 1,000 peers (from the real-process test)',
      r.root_cpu_core_per_1000_peers === null ? '—' : `${s3(r.root_cpu_core_per_1000_peers)} cores`,
      '< 1 core',
      r.root_cpu_core_per_1000_peers === null ? null : r.root_cpu_core_per_1000_peers < 1,
    ),
    goal(
      'root memory for 1,000 peers',
      r.root_mb_per_1000_peers === null ? '—' : `${r.root_mb_per_1000_peers.toFixed(0)} MB`,
      '< 200 MB',
      r.root_mb_per_1000_peers === null ? null : r.root_mb_per_1000_peers < 200,
    ),
    '',
    '### Time until containers started, against hosts (10 containers per host)',
    '',
    'Calibrated: with the per-chunk host work above. Ideal: network and start time only.',
    '',
    '| hosts | containers | p50 | p90 | p99 | all | ideal: all | registry egress | root upload | max host upload |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.scaling.map(
      (x) =>
        `| ${x.hosts} | ${x.calibrated.containers} | ${s3(x.calibrated.p50_s)} s | ${s3(x.calibrated.p90_s)} s | ${s3(x.calibrated.p99_s)} s | ${s3(x.calibrated.all_started_s)} s | ${s3(x.ideal.all_started_s)} s | ${s3(x.calibrated.registry_egress_ratio)}× (${mb(x.calibrated.registry_bytes)} MB) | ${mb(x.calibrated.root_upload_bytes)} MB | ${mb(x.calibrated.host_upload_max_bytes)} MB |`,
    ),
    '',
    `### Sweeps (${r.sim_hosts} hosts, calibrated)`,
    '',
    '| sweep | value | p50 | p99 | all started | registry egress | pushed chunks | host requests |',
    '|---|---|---|---|---|---|---|---|',
    ...[...r.sweeps, ...r.failures].map(
      (x) =>
        `| ${x.sweep} | ${x.value} | ${s3(x.result.p50_s)} s | ${s3(x.result.p99_s)} s | ${s3(x.result.all_started_s)} s (${x.result.started}/${x.result.containers}) | ${s3(x.result.registry_egress_ratio)}× | ${x.result.pushed_chunks} | ${x.result.host_requests} |`,
    ),
    '',
    "Failures: the hosts die when half of the fault-free run's chunk arrivals have happened; children",
    "notice a dead parent after the agent's request deadline (10 s by default; shorter deadlines shown),",
    'report it to the root (`Tracker.report`), walk up to the next ancestor and are re-placed.',
    `Dead hosts, failed requests and re-parentings at the default deadline: ${r.failures[0]?.result.dead_hosts ?? '—'}, ${r.failures[0]?.result.failed_requests ?? '—'}, ${r.failures[0]?.result.reparents ?? '—'}.`,
    '',
    '### Simulated against measured (bench/p2p, network namespaces)',
    '',
    r.validation_note,
    '',
  ];
  if (r.validation.length) {
    out.push(
      '| hosts | workload | all started: measured | simulated | error | registry bytes: measured | simulated | error |',
      '|---|---|---|---|---|---|---|---|',
      ...r.validation.map(
        (v) =>
          `| ${v.hosts} | ${v.workload} | ${s3(v.measured_all_started_s)} s | ${s3(v.sim_all_started_s)} s | ${pct(v.time_rel_error)} | ${mb(v.measured_registry_bytes)} MB | ${mb(v.sim_registry_bytes)} MB | ${pct(v.egress_rel_error)} |`,
      ),
      '',
    );
  }
  out.push('### Real processes on one machine (bench/scale/agents.ts)', '');
  if (r.real) {
    const a = r.real;
    out.push(
      `${a.agents} agent processes on loopback, each with its own port and cache, fetched one ${mb(a.blob_bytes)} MB blob`,
      `through the tree of one \`dadi p2p root\`: all finished in ${a.all_finished_s.toFixed(2)} s (agents read ${mb(a.registry_bytes)} MB from the registry themselves).`,
      `The root used ${a.root_cpu_s.toFixed(2)} s of CPU and ${a.root_rss_mb_idle.toFixed(0)} → ${a.root_rss_mb_peak.toFixed(0)} MB RSS: per 1,000 peers`,
      `${s3(a.root_cpu_core_per_1000_peers)} cores over the run and ${a.root_mb_per_1000_peers.toFixed(0)} MB. ${a.note}`,
      '',
    );
  } else out.push('Not run yet (`node --import tsx bench/scale/agents.ts`, root).', '');
  out.push(`Simulation wall time: ${r.total_s.toFixed(0)} s. ![scale chart](scale.svg)`, '');
  return out.join('\n');
}

/** Seconds until 50/90/99/100% started against hosts (log x), calibrated model. */
export function renderSvg(r: ScaleReport): string {
  const W = 640;
  const H = 360;
  const L = 60;
  const R = 130;
  const T = 30;
  const B = 50;
  const xs = r.scaling.map((s) => s.hosts);
  const ymax = Math.max(0.5, ...r.scaling.map((s) => s.calibrated.all_started_s).filter(Number.isFinite)) * 1.1;
  const lx = (h: number) =>
    L +
    ((Math.log10(h) - Math.log10(xs[0]!)) / (Math.log10(xs[xs.length - 1]!) - Math.log10(xs[0]!) || 1)) * (W - L - R);
  const ly = (y: number) => H - B - (y / ymax) * (H - T - B);
  const series: [string, string, (x: Result) => number][] = [
    ['p50', '#4e79a7', (x) => x.p50_s],
    ['p90', '#f28e2b', (x) => x.p90_s],
    ['p99', '#e15759', (x) => x.p99_s],
    ['100%', '#222', (x) => x.all_started_s],
  ];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="${L}" y="18" font-size="14">Containers started (10 per host), simulated, calibrated</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#888"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#888"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">hosts (log scale)</text>`,
    `<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">seconds</text>`,
  ];
  for (const h of xs) {
    parts.push(`<text x="${lx(h)}" y="${H - B + 16}" text-anchor="middle">${h}</text>`);
  }
  for (let y = 0; y <= ymax; y += ymax > 4 ? 1 : 0.5) {
    parts.push(`<text x="${L - 6}" y="${ly(y) + 4}" text-anchor="end">${y.toFixed(1)}</text>`);
    parts.push(`<line x1="${L}" y1="${ly(y)}" x2="${W - R}" y2="${ly(y)}" stroke="#eee"/>`);
  }
  series.forEach(([name, color, f], i) => {
    const pts = r.scaling.map((s) => `${lx(s.hosts).toFixed(1)},${ly(f(s.calibrated)).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`);
    parts.push(
      `<line x1="${W - R + 12}" y1="${T + 10 + i * 18}" x2="${W - R + 32}" y2="${T + 10 + i * 18}" stroke="${color}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${W - R + 38}" y="${T + 14 + i * 18}">${name} started</text>`);
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}
