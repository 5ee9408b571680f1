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

/** One real-process run of bench/scale/agents.ts. */
export interface AgentRun {
  agents: number;
  blob_bytes: number;
  all_finished_s: number;
  slowest_agent_s: number;
  median_agent_s: number;
  root_cpu_s: number;
  root_rss_mb_idle: number;
  root_rss_mb_peak: number;
  /** CPU of all agents from `go` until all had the blob, and the chunks they took in. */
  agent_cpu_s: number;
  agent_chunks: number;
  agent_cpu_ms_per_chunk: number;
  /** Bytes agents received by source (registry: their own fallback reads). */
  bytes: { root: number; peer: number; registry: number };
  fallbacks: number;
  /** 1-minute load average when the run ended (its own processes included) and before it started. */
  load_average: number;
  load_average_before?: number;
}

/** The root alone under many joins (agents.ts). */
export interface JoinCost {
  joins: number;
  wall_s: number;
  root_cpu_ms_per_join: number;
  root_rss_mb_before: number;
  root_rss_mb_after: number;
  root_kb_per_peer: number;
  /**
   * Root CPU per 1 MiB chunk: the first read of each chunk of a blob (registry fetch and cache
   * write included: once per blob, not per peer), and then each read from its warm cache (per
   * chunk served). Absent in reports made before they were measured.
   */
  root_cpu_ms_fill_per_chunk?: number;
  /** The same for a second blob (a start's second layer: the fill's code has run once). */
  root_cpu_ms_fill_per_chunk_second_blob?: number;
  /** CPU per join when the same hosts then join a second blob (each host joins every layer). */
  root_cpu_ms_per_join_second_layer?: number;
  root_cpu_ms_per_served_chunk?: number;
  served_chunks?: number;
  /**
   * The round run first on the fresh root (other hosts joining another blob, a fill of another
   * blob): what a just-started root pays once more than one that has served before (compiling
   * its code, growing its heap and buffer pool). Reports with it measured everything above on the
   * root after this round; older ones measured on the fresh root.
   */
  warmup?: { joins: number; root_cpu_ms_per_join: number; root_cpu_ms_fill_per_chunk: number };
  load_average: number;
  load_average_before?: number;
}

/** One agent's CPU cost, measured by `agents.ts --host-cost`. */
export interface HostCost {
  date: string;
  runs: AgentRun[];
  agent_cpu_ms_per_chunk: number;
  agent_fixed_cpu_s: number;
  note: string;
}

/** What bench/scale/agents.ts measured with real processes, and the per-peer figures fitted from it. */
export interface RealAgents {
  /** The largest run's agent count. */
  agents: number;
  blob_bytes: number;
  chunk_timeout_ms: number;
  runs: AgentRun[];
  root_cpu_s_per_peer: number;
  root_cpu_s_fixed: number;
  root_mb_per_peer: number;
  root_mb_fixed: number;
  joins: JoinCost;
  /** Root CPU seconds and peak RSS for 1,000 peers fetching the blob (the fitted line at 1,000). */
  root_cpu_s_per_1000_peers: number;
  root_mb_per_1000_peers: number;
  /** One agent's CPU per chunk it took in (serving its children included), over every run. */
  agent_cpu_ms_per_chunk: number;
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
  scaling: { hosts: number; measured: Result; ideal: Result }[];
  sweeps: SweepRow[];
  failures: SweepRow[];
  validation: ValidationRow[];
  validation_note: string;
  real: RealAgents | null;
  /** How root_cpu_core_per_1000_peers and root_mb_per_1000_peers were made (rootPer1000Peers). */
  root_per_1000_peers?: ReturnType<typeof rootPer1000Peers> | null;
  total_s: number;
}

/** What the root does for 1,000 hosts starting at once, from the simulated headline run. */
export interface RootWork {
  /** The simulated start of 1,000 hosts: the time in which the root must do it. */
  startS: number;
  /** Blobs (layers) each host joins a tree for. */
  layers: number;
  /** Chunks the root served in that run (to its direct children and walk-ups). */
  rootChunks: number;
  /** Distinct chunks the start needs: each fetched from the registry into the root's cache once. */
  fillChunks: number;
}

/** The peers rootPer1000Peers extrapolates to. */
const PEERS = 1000;

/**
 * The root's cost for 1,000 peers starting at once, from the real-process measurements: CPU = the
 * joins (one per peer and layer, at the CPU per join measured by the joins run) + the chunks the root
 * serves in the simulated start, spread over the simulated start. Chunks: each needed chunk's first
 * serve at the CPU of a cache fill (registry fetch and cache write: once per blob, however many
 * peers), every further one at the CPU of a serve from the warm cache (both measured by the joins
 * run); reports made before those were measured charge every chunk the CPU per served chunk of the
 * smallest fetch run (its root CPU less its joins, over the chunks it served, fills included). Not the
 * fetch runs' fitted line: on 2 cores 200 agents take minutes, and the root's CPU then grows with the
 * run's length (heartbeats, reports), not with what a start needs.
 * Memory: the largest peak RSS seen plus the per-peer state measured by the joins.
 */
export function rootPer1000Peers(
  a: RealAgents,
  w: RootWork,
): {
  cores: number;
  mb: number;
  cpu_s: number;
  join_ms: number;
  chunk_ms: number;
  fill_ms?: number;
  /** The same start on a root started just before it (its warm-up included), when measured. */
  cores_fresh_root?: number;
  note: string;
} {
  const firstJoinMs = a.joins.root_cpu_ms_per_join;
  // Each host joins every layer's tree: the first layer at the first joins' cost, the rest at the
  // cost the same hosts paid joining a second blob (when measured). Per join: their mean.
  const laterJoinMs = a.joins.root_cpu_ms_per_join_second_layer ?? firstJoinMs;
  const joinMs = (firstJoinMs + (w.layers - 1) * laterJoinMs) / w.layers;
  const small = a.runs.reduce((x, r) => (r.agents < x.agents ? r : x));
  const served = small.bytes.root / (1 << 20);
  // The needed chunks lie in every layer: the first blob's fill at its cost, the others' at the second blob's.
  const firstFill = a.joins.root_cpu_ms_fill_per_chunk;
  const laterFill = a.joins.root_cpu_ms_fill_per_chunk_second_blob ?? firstFill;
  const fillMs =
    firstFill === undefined || laterFill === undefined
      ? undefined
      : (firstFill + (w.layers - 1) * laterFill) / w.layers;
  const warmMs = a.joins.root_cpu_ms_per_served_chunk;
  const split = fillMs !== undefined && warmMs !== undefined;
  const chunkMs = split
    ? warmMs
    : served > 0
      ? ((small.root_cpu_s - (small.agents * joinMs) / 1000) * 1000) / served
      : 0;
  const joinsS = (PEERS * w.layers * joinMs) / 1000;
  const fills = split ? Math.min(w.fillChunks, w.rootChunks) : 0;
  const chunksS = (fills * (fillMs ?? 0) + (w.rootChunks - fills) * chunkMs) / 1000;
  const cpuS = joinsS + chunksS;
  const chunksNote = split
    ? `plus ${w.rootChunks.toFixed(0)} chunks the root serves in the simulated start: ${fills.toFixed(0)} first serves of the needed chunks × ${fillMs.toFixed(1)} ms ` +
      `(registry fetch and cache write included: once per blob, not per peer; first blob ${(firstFill ?? 0).toFixed(1)} ms, second ${(laterFill ?? 0).toFixed(1)} ms) + ${(w.rootChunks - fills).toFixed(0)} from its warm cache × ${warmMs.toFixed(2)} ms ` +
      `(the joins run: ${a.joins.served_chunks ?? 0} reads of a 16-chunk blob, 16 at a time) = ${chunksS.toFixed(2)} s`
    : `plus ${w.rootChunks.toFixed(0)} chunks the root serves in the simulated start × ${chunkMs.toFixed(1)} ms per served chunk (the ${small.agents}-agent run: ${small.root_cpu_s.toFixed(2)} s of root CPU for ${served.toFixed(0)} chunks) = ${chunksS.toFixed(2)} s`;
  // A just-started root: the first layer's joins and the first blob's fill at the warm-up round's cost.
  const wu = a.joins.warmup;
  const freshS = wu
    ? cpuS +
      (PEERS * (wu.root_cpu_ms_per_join - firstJoinMs) +
        (fills / w.layers) * (wu.root_cpu_ms_fill_per_chunk - (firstFill ?? 0))) /
        1000
    : undefined;
  const freshNote =
    wu && freshS !== undefined
      ? ` These are for a root that has served before (a root runs for days): the joins run first warms it up with a start's shape: ${wu.joins} other hosts joining two other blobs (the first ${wu.root_cpu_ms_per_join.toFixed(2)} ms per join) and fills of two other blobs (the first ${wu.root_cpu_ms_fill_per_chunk.toFixed(1)} ms per chunk). ` +
        `A root started just before the start pays that once more (compiling its code, growing its heap and buffer pool): the first layer's joins and fills at those costs make ${freshS.toFixed(2)} CPU seconds = ${(freshS / w.startS).toFixed(2)} cores.`
      : '';
  const peak = Math.max(...a.runs.map((x) => x.root_rss_mb_peak));
  const perPeerMb = Math.max(0, a.joins.root_kb_per_peer) / 1024;
  const mb = peak + 1000 * perPeerMb;
  return {
    cores: cpuS / w.startS,
    mb,
    cpu_s: cpuS,
    join_ms: joinMs,
    chunk_ms: chunkMs,
    ...(split ? { fill_ms: fillMs } : {}),
    ...(freshS !== undefined ? { cores_fresh_root: freshS / w.startS } : {}),
    note:
      `CPU: 1,000 peers × ${w.layers} layers × ${joinMs.toFixed(2)} ms per join (${a.joins.joins} hosts joining a first blob: ${firstJoinMs.toFixed(2)} ms, then a second: ${laterJoinMs.toFixed(2)} ms) = ${joinsS.toFixed(2)} s, ${chunksNote}; ` +
      `${cpuS.toFixed(2)} CPU seconds within the simulated ${w.startS.toFixed(2)} s start = ${(cpuS / w.startS).toFixed(2)} cores.${freshNote} ` +
      `Memory: the largest peak RSS of the runs (${peak.toFixed(0)} MB: the idle process, chunk buffers, not per-peer) + 1,000 × ${(perPeerMb * 1024).toFixed(1)} KB ` +
      `of per-peer state (tracker host and member entries, their sets; idle keep-alive sockets close after 5 s) = ${mb.toFixed(0)} MB.`,
  };
}

const s3 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3);
const mb = (x: number) => (x / 1e6).toFixed(1);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function goal(what: string, measured: string, limit: string, met: boolean | null): string {
  return `| ${what} | ${measured} | ${limit} | ${met === null ? 'not measured' : met ? 'met' : '**missed**'} |`;
}

/** The root's work in the simulated headline run. */
export function rootWork(r: ScaleReport): RootWork {
  const m = r.model as { layers?: number; needed_bytes?: number; defaults?: { chunkSize?: number } };
  const chunk = m.defaults?.chunkSize ?? 1 << 20;
  const rootChunks = r.headline.root_upload_bytes / chunk;
  return {
    startS: r.sim_all_started_s,
    layers: m.layers ?? 2,
    rootChunks,
    // Without the needed bytes, every chunk counts as a first serve (an upper bound).
    fillChunks: m.needed_bytes === undefined ? rootChunks : Math.ceil(m.needed_bytes / chunk),
  };
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
    `(${m.warm_start_s.toFixed(2)} s) spread between its reads, and each host's agent spends ${(m.host_chunk_s * 1000).toFixed(2)} ms of CPU per`,
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
      'root CPU for 1,000 peers during their start (from the real-process test)',
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
    "Measured: with the agent's CPU per chunk above. Ideal: network and start time only.",
    '',
    '| hosts | containers | p50 | p90 | p99 | all | ideal: all | registry egress | root upload | max host upload |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...r.scaling.map(
      (x) =>
        `| ${x.hosts} | ${x.measured.containers} | ${s3(x.measured.p50_s)} s | ${s3(x.measured.p90_s)} s | ${s3(x.measured.p99_s)} s | ${s3(x.measured.all_started_s)} s | ${s3(x.ideal.all_started_s)} s | ${s3(x.measured.registry_egress_ratio)}× (${mb(x.measured.registry_bytes)} MB) | ${mb(x.measured.root_upload_bytes)} MB | ${mb(x.measured.host_upload_max_bytes)} MB |`,
    ),
    '',
    `### Sweeps (${r.sim_hosts} hosts, measured agent CPU)`,
    '',
    '| sweep | value | p50 | p99 | all started | registry egress | root upload | pushed chunks | host requests | hedged |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...[...r.sweeps, ...r.failures].map(
      (x) =>
        `| ${x.sweep} | ${x.value} | ${s3(x.result.p50_s)} s | ${s3(x.result.p99_s)} s | ${s3(x.result.all_started_s)} s (${x.result.started}/${x.result.containers}) | ${s3(x.result.registry_egress_ratio)}× | ${mb(x.result.root_upload_bytes)} MB | ${x.result.pushed_chunks} | ${x.result.host_requests} | ${x.result.hedged_requests ?? 0} |`,
    ),
    '',
    "Failures: the hosts die when half of the fault-free run's chunk arrivals have happened. A dead host",
    'answers nothing. As the agent does, a child asks the next hop up too (the grandparent, else the',
    'root) when its parent has gone silent: no bytes on any request and no heartbeat (a parent still',
    'fetching a chunk it was asked for sends an HTTP 102 every 100 ms) for the hedge delay',
    '(TransferDeadline.hedgeMs: 1.5× the expected transfer, 250 ms at least), within src/p2p',
    "HedgeGate's limits (2 speculative hedges in flight per host, back-off when hedges lose, 4 hedges to",
    'the root and one more per 5 s per host); the first good answer wins, the loser is aborted and the',
    'silent parent is reported slow (`Tracker.report`: a new parent). Only when that fails as well does',
    "the request's deadline (a peer's: 4× the measured transfer, 1 s at least, 10 s at most) send the",
    'chunk to the root. Without hedging, every chunk in flight to a dead parent waited a deadline and',
    "was then fetched from the root, by the dead host's children and, as their parents timed out too,",
    "by their subtrees: the root's upload, not detection, was the tail (root upload above). Hedging on",
    "the request's own silence alone (branch scale-hedge-wip) fed on itself: in a synchronized start a",
    'live parent waiting on its own parent looks the same, and fault-free fan-out 16 took 8.1 s.',
    ...r.failures.map(
      (x) =>
        `- ${x.value}: ${x.result.dead_hosts} dead hosts, ${x.result.hedged_requests ?? 0} hedged (${x.result.hedge_gate?.won ?? 0} won, ${x.result.hedge_gate?.lost ?? 0} lost; held back ${x.result.hedge_gate?.capped ?? 0}× by the in-flight cap, ${x.result.hedge_gate?.root_denied ?? 0}× by the root's budget) and ${x.result.failed_requests} failed requests, ${x.result.reparents} re-parentings.`,
    ),
    '',
    '### Simulated against measured (bench/p2p, network namespaces)',
    '',
    r.validation_note,
    '',
  ];
  if (r.validation.length) {
    out.push(
      '| hosts | workload | all started: measured | simulated | error | registry bytes: measured | simulated | error | CPU per start (one-host run): daemon + start, + once | machine CPU: measured / modelled | one host: measured / simulated | chunks per start: recorded / one-host run |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...r.validation.map(
        (v) =>
          `| ${v.hosts} | ${v.workload} | ${s3(v.measured_all_started_s)} s | ${s3(v.sim_all_started_s)} s | ${pct(v.time_rel_error)} | ${mb(v.measured_registry_bytes)} MB | ${mb(v.sim_registry_bytes)} MB | ${pct(v.egress_rel_error)} | ` +
          (v.start_cpu
            ? `${v.start_cpu.daemon_s.toFixed(2)} + ${v.start_cpu.start_s.toFixed(2)} s, + ${v.start_cpu.background_s.toFixed(2)} s | ${v.measured_machine_cpu_s?.toFixed(1) ?? '—'} / ${v.sim_machine_cpu_s.toFixed(1)} s | `
            : '— | — | ') +
          `${s3(v.measured_single_s)} / ${s3(v.sim_single_s)} s | ` +
          (v.chunks ? `${v.chunks.recorded} / ${v.chunks.one_host} |` : '— |'),
      ),
      '',
    );
  }
  out.push('### Real processes on one machine (bench/scale/agents.ts)', '');
  if (r.real) {
    const a = r.real;
    const root = rootPer1000Peers(a, rootWork(r));
    out.push(
      `Agent processes on loopback, each with its own port and cache (the daemon's P2P agent), fetched one ${mb(a.blob_bytes)} MB blob`,
      `at once through the tree of one \`dadi p2p root\`; every copy matched the blob's digest. Agents' chunk deadline ${a.chunk_timeout_ms / 1000} s: on one`,
      'shared machine a slow answer is CPU contention, not a slow link.',
      '',
      '| agents | all finished | median agent | root CPU | root RSS idle → peak | agents CPU per chunk | bytes from root / peers / registry | fallbacks | load avg before / at the end (its own processes) |',
      '|---|---|---|---|---|---|---|---|---|',
      ...a.runs.map(
        (x) =>
          `| ${x.agents} | ${x.all_finished_s.toFixed(2)} s | ${x.median_agent_s.toFixed(2)} s | ${x.root_cpu_s.toFixed(2)} s | ${x.root_rss_mb_idle.toFixed(0)} → ${x.root_rss_mb_peak.toFixed(0)} MB | ${x.agent_cpu_ms_per_chunk.toFixed(1)} ms | ${mb(x.bytes.root)} / ${mb(x.bytes.peer)} / ${mb(x.bytes.registry)} MB | ${x.fallbacks} | ${x.load_average_before?.toFixed(2) ?? '—'} / ${x.load_average.toFixed(1)} |`,
      ),
      '',
      `The root alone under ${a.joins.joins} joins of distinct hosts (16 at a time)${a.joins.warmup ? `, once warmed up (a just-started root's first ${a.joins.warmup.joins}: ${a.joins.warmup.root_cpu_ms_per_join.toFixed(3)} ms)` : ''}: ${a.joins.root_cpu_ms_per_join.toFixed(3)} ms of CPU per join,`,
      `RSS ${a.joins.root_rss_mb_before.toFixed(0)} → ${a.joins.root_rss_mb_after.toFixed(0)} MB (${a.joins.root_kb_per_peer.toFixed(1)} KB per peer). Root CPU over the fetch runs, fitted as a line`,
      `over their agent counts: ${a.root_cpu_s_fixed.toFixed(2)} s fixed (filling its cache, serving its direct children) + ${(a.root_cpu_s_per_peer * 1000).toFixed(2)} ms per peer`,
      '(join, heartbeats, reports, walk-ups to the root).',
      '',
      `Per 1,000 peers: ${root.note}`,
      '',
    );
  } else out.push('Not run yet (`node --import tsx bench/scale/agents.ts`).', '');
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
  const ymax = Math.max(0.5, ...r.scaling.map((s) => s.measured.all_started_s).filter(Number.isFinite)) * 1.1;
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
    const pts = r.scaling.map((s) => `${lx(s.hosts).toFixed(1)},${ly(f(s.measured)).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`);
    parts.push(
      `<line x1="${W - R + 12}" y1="${T + 10 + i * 18}" x2="${W - R + 32}" y2="${T + 10 + i * 18}" stroke="${color}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${W - R + 38}" y="${T + 14 + i * 18}">${name} started</text>`);
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}
