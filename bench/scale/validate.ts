// The simulator against real runs: bench/p2p's network-namespace benchmark (docs/bench/p2p.json)
// starts one container on each of 20 (and 50) hosts at once through a real root and real agents.
// Each P2P run of it is simulated with its own setup (workload, links, registry RTT, fan-out, no
// trace prefetch: bench/p2p runs the plain converted image) on its machine: N hosts sharing its
// cores (cpu.ts). Those runs sit at their CPU floor (every host's daemon, `dadi run`, nsenter,
// runc and container on 2 cores), so what a start costs in CPU decides the time, and it is taken
// from a separate measurement, the same report's one-host cold start (`single`, run before the
// N hosts on the same cluster): its daemon's CPU is the simulated daemon's (its one-time part
// before the first chunk, the agent's measured CPU per chunk after), the rest of the machine's
// CPU in that run except the root's and the registry's is the host's start (`dadi run` and what
// it runs, the kernel's share) on the container's lane, and the root's and the registry's run
// once beside them. Nothing is fitted to the N-host runs being predicted. Reports simulated and
// measured time until all started and registry egress, and the worst relative error.

import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../coldstart/image.js';
import { runScenario, type ScenarioConfig } from './scenario.js';
import { type ChunkRef, loadStartReads, planStart, type StartPlan, type WorkloadName } from './workload.js';

export interface ValidationRow {
  hosts: number;
  workload: WorkloadName;
  measured_all_started_s: number;
  sim_all_started_s: number;
  measured_registry_bytes: number;
  sim_registry_bytes: number;
  time_rel_error: number;
  egress_rel_error: number;
  /** The measured single host of the same run (its CPU is the model's per-host cost) and as simulated. */
  measured_single_s: number;
  sim_single_s: number;
  /** The per-start CPU the model charged, from that one-host run. */
  start_cpu: StartCpu;
  /** The N-host run's CPU: the whole machine, and as simulated (hosts × per-start + background). */
  measured_machine_cpu_s: number | null;
  sim_machine_cpu_s: number;
  /**
   * Chunks one start needs: by the recorded reads (WORKLOAD-start.reads.json), and as the one-host
   * run fetched them; the model's start needs the larger (atMount: chunks it added to the mount step).
   */
  chunks?: { recorded: number; one_host: number; at_mount: number };
}

interface RunCpu {
  allStartedS?: number;
  registryBytes: number;
  cpuSeconds?: { daemons: number; root: number; machine: number };
  cpuByCommand?: Array<{ command: string; cpuS: number }>;
  tally?: { agentBytes: { registry: number; root: number; peer: number } };
}

interface P2PReport {
  machine?: { cpus?: number };
  setup: { workload: string[]; uplink_mbit: number; host_mbit: number; registry_rtt_ms: number; fanout: number };
  modes: { mode: string; hosts: number; single: RunCpu; all: RunCpu }[];
}

/** One host's cold start in CPU seconds, from a one-host run (see the top of this file). */
export interface StartCpu {
  /** The daemon's CPU, all of it. */
  daemon_s: number;
  /** The rest of the machine's CPU except the root's and the registry's: the start itself. */
  start_s: number;
  /** The root's and the registry's CPU (once per run, not per host). */
  background_s: number;
}

/** What one host's start cost in the one-host run `single`; undefined when it was not measured. */
export function startCpuOf(single: RunCpu): StartCpu | undefined {
  const c = single.cpuSeconds;
  if (!c || !single.cpuByCommand) return undefined;
  const registry = single.cpuByCommand
    .filter((r) => r.command.startsWith('docker-registry') || r.command.startsWith('registry'))
    .reduce((a, r) => a + r.cpuS, 0);
  return {
    daemon_s: c.daemons,
    start_s: Math.max(0, c.machine - c.daemons - c.root - registry),
    background_s: c.root + registry,
  };
}

/**
 * `plan` with `atMount` more chunks read at the mount, before the container's first read: chunks
 * of the first layer the recorded reads never touch, lowest first. The recorded reads are a
 * container's trace replayed through the read path of when they were recorded; a start of today
 * also reads what the daemon does at the mount (its ext4 metadata and launch-file prefetch) and
 * runs on the image as converted today. How many more chunks that is comes from the one-host run
 * (what one start fetched), never from the run being predicted.
 */
export function withMountChunks(plan: StartPlan, atMount: number): StartPlan {
  if (atMount <= 0) return plan;
  const used = new Set(plan.chunks.map((c) => `${c.layer}:${c.index}`));
  const size = plan.layerSizes[0] ?? 0;
  const added: ChunkRef[] = [];
  for (let i = 0; added.length < atMount && i * plan.chunkSize < size; i++) {
    if (!used.has(`0:${i}`)) added.push({ layer: 0, index: i });
  }
  const bytes = added.reduce((a, c) => a + Math.min(plan.chunkSize, size - c.index * plan.chunkSize), 0);
  const [mount = [], ...rest] = plan.steps;
  return {
    ...plan,
    steps: [[...mount, ...added], ...rest],
    chunks: [
      ...plan.chunks.filter((c) => mount.includes(c)),
      ...added,
      ...plan.chunks.filter((c) => !mount.includes(c)),
    ],
    neededBytes: plan.neededBytes + bytes,
  };
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
  const skipped: number[] = [];
  for (const m of runs) {
    const recorded = planStart(loadStartReads(workload), base.chunkSize);
    const cpu = startCpuOf(m.single);
    if (!cpu) {
      skipped.push(m.hosts);
      continue;
    }
    // The daemon's CPU: its per-chunk share as measured (agents.ts), the rest before its first chunk.
    const got = m.single.tally?.agentBytes;
    const chunks = got ? Math.ceil((got.registry + got.root + got.peer) / base.chunkSize) : recorded.chunks.length;
    const atMount = Math.max(0, chunks - recorded.chunks.length);
    const plan = withMountChunks(recorded, atMount);
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
      hostFixedS: Math.max(0, cpu.daemon_s - chunks * base.hostChunkS),
      // The start's CPU on the container's lane, spread between its reads as the warm start is.
      warmStartS: cpu.start_s,
      sharedCores: report.machine?.cpus ?? 2,
      sharedBackgroundS: cpu.background_s,
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
      start_cpu: cpu,
      measured_machine_cpu_s: m.all.cpuSeconds?.machine ?? null,
      sim_machine_cpu_s: m.hosts * (cpu.daemon_s + cpu.start_s) + cpu.background_s,
      chunks: { recorded: recorded.chunks.length, one_host: chunks, at_mount: atMount },
    });
  }
  const errors = rows.flatMap((r) => [r.time_rel_error, r.egress_rel_error]);
  // Reports are committed: name the input relative to the checkout, not this machine's worktree.
  const input = relative(REPO_ROOT, p2pJson) || p2pJson;
  return {
    rows,
    maxRelError: errors.length ? Math.max(...errors) : null,
    note: rows.length
      ? `${input}: ${rows.length} P2P run(s) simulated with their own setup on ${report.machine?.cpus ?? 2} shared cores; ` +
        "each host's start costs the CPU the same report's one-host cold start used (its daemon's; the rest of the machine's " +
        "but the root's and the registry's, which run once beside them), and needs the chunks that run fetched: the recorded reads' " +
        "chunks, plus at the mount as many as that run fetched beyond them (the daemon's mount-time ext4 prefetch and today's " +
        'conversion of the image, which the recorded trace predates); nothing fitted to the runs predicted' +
        (skipped.length
          ? `; runs at ${skipped.join(', ')} hosts have no CPU by command (older bench/p2p) and are left out`
          : '')
      : `${input} has no completed P2P run with CPU by command (only the baseline, or an older bench/p2p): no validation yet`,
  };
}
