// The simulator against real runs: bench/p2p's network-namespace benchmark (docs/bench/p2p.json)
// starts one container on each of 20 (and 50) hosts at once through a real root and real agents.
// Each P2P run of it is simulated with its own setup (workload, links, registry RTT, fan-out, no
// trace prefetch: bench/p2p runs the plain converted image); the host's per-chunk work is
// calibrated on that run's single-host cold start, then the N-host run is predicted. Reports
// simulated and measured time until all started and registry egress, and the worst relative error.

import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../coldstart/image.js';
import { runScenario, type ScenarioConfig } from './scenario.js';
import { loadStartReads, planStart, type StartPlan, type WorkloadName } from './workload.js';

export interface ValidationRow {
  hosts: number;
  workload: WorkloadName;
  measured_all_started_s: number;
  sim_all_started_s: number;
  measured_registry_bytes: number;
  sim_registry_bytes: number;
  time_rel_error: number;
  egress_rel_error: number;
  /** Calibration: the measured single-host cold start and the per-chunk host work it gave. */
  measured_single_s: number;
  host_chunk_s: number;
}

interface P2PReport {
  setup: { workload: string[]; uplink_mbit: number; host_mbit: number; registry_rtt_ms: number; fanout: number };
  modes: {
    mode: string;
    hosts: number;
    single: { allStartedS?: number; registryBytes: number };
    all: { allStartedS?: number; registryBytes: number };
  }[];
}

/** The warm start of a workload: the median of bench/coldstart's dadi-warm medians over its links. */
export function warmStartOf(workload: WorkloadName): number {
  const cs = JSON.parse(readFileSync(join(REPO_ROOT, 'docs/bench/coldstart.json'), 'utf8')) as {
    cells: { workload: string; contestants: Record<string, { seconds: { median: number } }> }[];
  };
  const warm = cs.cells
    .filter((c) => c.workload === workload)
    .map((c) => c.contestants['dadi-warm']!.seconds.median)
    .sort((a, b) => a - b);
  if (warm.length === 0) throw new Error(`docs/bench/coldstart.json has no dadi-warm ${workload} runs`);
  const mid = warm.length >> 1;
  return warm.length % 2 ? warm[mid]! : (warm[mid - 1]! + warm[mid]!) / 2;
}

/** The per-chunk host work (bisection) at which one simulated host's start takes `measuredS`. */
export function calibrateHostChunk(config: ScenarioConfig, plan: StartPlan, measuredS: number): number {
  const one = (hostChunkS: number) =>
    runScenario({ ...config, hosts: 1, containersPerHost: 1, hostChunkS, failFraction: 0 }, plan).all_started_s;
  if (one(0) >= measuredS) return 0;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 40 && one(hi) < measuredS; i++) hi *= 2;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (one(mid) < measuredS) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export function validate(
  p2pJson: string,
  base: ScenarioConfig,
): { rows: ValidationRow[]; maxRelError: number | null; note: string } {
  if (!existsSync(p2pJson)) {
    return {
      rows: [],
      maxRelError: null,
      note: `${p2pJson} does not exist yet (bench/p2p has not been run): no validation; rerun npm run bench:scale after it`,
    };
  }
  const report = JSON.parse(readFileSync(p2pJson, 'utf8')) as P2PReport;
  const workload: WorkloadName = report.setup.workload.includes('python3') ? 'python' : 'cat';
  const runs = report.modes.filter(
    (m) => m.mode === 'p2p' && m.all.allStartedS !== undefined && m.single.allStartedS !== undefined,
  );
  const rows: ValidationRow[] = [];
  for (const m of runs) {
    const plan = planStart(loadStartReads(workload), base.chunkSize);
    const config: ScenarioConfig = {
      ...base,
      hosts: m.hosts,
      containersPerHost: 1,
      hostGbit: report.setup.host_mbit / 1000,
      rootGbit: report.setup.host_mbit / 1000,
      registryGbit: report.setup.uplink_mbit / 1000,
      // The RTT is added in front of the registry only: every registry request pays it once.
      registryRequestS: base.registryRequestS + report.setup.registry_rtt_ms / 1000,
      fanout: report.setup.fanout,
      rootFanout: report.setup.fanout,
      prefetchWorkers: 0,
      warmStartS: warmStartOf(workload),
      failFraction: 0,
    };
    const hostChunkS = calibrateHostChunk(config, plan, m.single.allStartedS!);
    const r = runScenario({ ...config, hostChunkS }, plan);
    const rel = (sim: number, measured: number) => Math.abs(sim - measured) / measured;
    rows.push({
      hosts: m.hosts,
      workload,
      measured_all_started_s: m.all.allStartedS!,
      sim_all_started_s: r.all_started_s,
      measured_registry_bytes: m.all.registryBytes,
      sim_registry_bytes: r.registry_bytes,
      time_rel_error: rel(r.all_started_s, m.all.allStartedS!),
      egress_rel_error: rel(r.registry_bytes, m.all.registryBytes),
      measured_single_s: m.single.allStartedS!,
      host_chunk_s: hostChunkS,
    });
  }
  const errors = rows.flatMap((r) => [r.time_rel_error, r.egress_rel_error]);
  // Reports are committed: name the input relative to the checkout, not this machine's worktree.
  const input = relative(REPO_ROOT, p2pJson) || p2pJson;
  return {
    rows,
    maxRelError: errors.length ? Math.max(...errors) : null,
    note: rows.length
      ? `${input}: ${rows.length} P2P run(s) simulated with their own setup, calibrated on their single-host start`
      : `${input} has no completed P2P run (only the baseline): no validation yet`,
  };
}
