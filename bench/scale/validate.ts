// The simulator against real runs: bench/p2p's network-namespace benchmark (docs/bench/p2p.json)
// starts one container on each of 20 (and 50) hosts at once through a real root and real agents.
// Each P2P run of it is simulated with its own setup (workload, links, registry RTT, fan-out, no
// trace prefetch: bench/p2p runs the plain converted image) on its machine: N hosts sharing its
// cores (cpu.ts), each doing the agent's measured CPU per chunk and its container's warm start.
// Reports simulated and measured time until all started and registry egress, and the worst
// relative error.

import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../coldstart/image.js';
import { runScenario, type ScenarioConfig } from './scenario.js';
import { loadStartReads, planStart, type WorkloadName } from './workload.js';

export interface ValidationRow {
  hosts: number;
  workload: WorkloadName;
  measured_all_started_s: number;
  sim_all_started_s: number;
  measured_registry_bytes: number;
  sim_registry_bytes: number;
  time_rel_error: number;
  egress_rel_error: number;
  /** The measured single host of the same run (not used by the model: for comparison). */
  measured_single_s: number;
  sim_single_s: number;
}

interface P2PReport {
  machine?: { cpus?: number };
  setup: { workload: string[]; uplink_mbit: number; host_mbit: number; registry_rtt_ms: number; fanout: number };
  modes: {
    mode: string;
    hosts: number;
    single: { allStartedS?: number; registryBytes: number };
    all: { allStartedS?: number; registryBytes: number };
  }[];
}

/**
 * The warm start of a workload: the fastest dadi-warm run in bench/coldstart (over its links; a
 * warm start reads nothing over the link). That machine was shared and loaded, and its runs spread
 * by CPU contention alone: the fastest is the closest to what a host with its own cores takes.
 */
export function warmStartOf(workload: WorkloadName): number {
  const cs = JSON.parse(readFileSync(join(REPO_ROOT, 'docs/bench/coldstart.json'), 'utf8')) as {
    cells: { workload: string; contestants: Record<string, { seconds: { min: number } }> }[];
  };
  const warm = cs.cells.filter((c) => c.workload === workload).map((c) => c.contestants['dadi-warm']!.seconds.min);
  if (warm.length === 0) throw new Error(`docs/bench/coldstart.json has no dadi-warm ${workload} runs`);
  return Math.min(...warm);
}

/**
 * `base` carries the measured agent CPU (per chunk, and once per fresh agent); the machine's cores
 * are shared by every host's daemon and container (cpu.ts), a container's start costing its
 * measured warm start in CPU. Nothing is fitted to the run being predicted.
 */
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
      sharedCores: report.machine?.cpus ?? 2,
      failFraction: 0,
    };
    const r = runScenario(config, plan);
    const single = runScenario({ ...config, hosts: 1 }, plan);
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
      sim_single_s: single.all_started_s,
    });
  }
  const errors = rows.flatMap((r) => [r.time_rel_error, r.egress_rel_error]);
  // Reports are committed: name the input relative to the checkout, not this machine's worktree.
  const input = relative(REPO_ROOT, p2pJson) || p2pJson;
  return {
    rows,
    maxRelError: errors.length ? Math.max(...errors) : null,
    note: rows.length
      ? `${input}: ${rows.length} P2P run(s) simulated with their own setup on ${report.machine?.cpus ?? 2} shared cores, nothing fitted to them`
      : `${input} has no completed P2P run (only the baseline): no validation yet`,
  };
}
