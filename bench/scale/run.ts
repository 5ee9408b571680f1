// The scale benchmark (issue #14): 10 → 1,000 simulated hosts, 10 containers each, cold-starting
// the Debian + python3 image through the real src/p2p logic (scenario.ts); sweeps of fan-out,
// chunk size, pull-push, trace prefetch and roots; 5% of hosts dying mid-transfer; the simulator
// checked against the real network-namespace runs of bench/p2p (docs/bench/p2p.json, when it
// exists); and the real-process test's numbers (agents.ts → docs/bench/scale-agents.json). Each
// host's agent does the CPU per chunk measured by `agents.ts --host-cost`
// (docs/bench/scale-host-cost.json) on a core of its own. Writes docs/bench/scale.{json,md,svg}.
//
//   npm run bench:scale -- [--hosts 10,20,50,100,200,500,1000] [--sweep-hosts 1000] [--quick]
//   npm run bench:scale -- --refresh     # after bench/p2p or agents.ts ran: only those sections anew

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../coldstart/image.js';
import {
  type HostCost,
  type RealAgents,
  renderMarkdown,
  renderSvg,
  rootPer1000Peers,
  rootWork,
  type ScaleReport,
  type SweepRow,
} from './render.js';
import { DEFAULT_SCENARIO, runScenario, type ScenarioConfig, type ScenarioResult } from './scenario.js';
import { validate, warmStartOf } from './validate.js';
import { loadStartReads, planStart, type StartPlan } from './workload.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '10,20,50,100,200,500,1000' },
    'sweep-hosts': { type: 'string', default: '1000' },
    quick: { type: 'boolean', default: false },
    /** Keep the simulated sections of an existing scale.json; redo validation and the real-process part. */
    refresh: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO_ROOT, 'docs/bench') },
  },
});

const DOCS = values.out!;
const quick = values.quick === true;
const hostCounts = (quick ? '10,100' : values.hosts!).split(',').map(Number);
const sweepHosts = quick ? 100 : Number(values['sweep-hosts']);

/** One agent's measured CPU per chunk (agents.ts --host-cost). */
function hostCost(): HostCost {
  const path = join(DOCS, 'scale-host-cost.json');
  if (!existsSync(path)) throw new Error(`${path} is missing: run node --import tsx bench/scale/agents.ts --host-cost`);
  return JSON.parse(readFileSync(path, 'utf8')) as HostCost;
}

function row(name: string, value: string | number, r: ScenarioResult): SweepRow {
  return { sweep: name, value: String(value), result: strip(r) };
}

function strip(r: ScenarioResult): Omit<ScenarioResult, 'config'> & { config: Partial<ScenarioConfig> } {
  const diff: Partial<ScenarioConfig> = {};
  for (const k of Object.keys(r.config) as (keyof ScenarioConfig)[]) {
    if (r.config[k] !== DEFAULT_SCENARIO[k]) (diff as Record<string, unknown>)[k] = r.config[k];
  }
  return { ...r, config: diff };
}

function log(r: ScenarioResult, what: string): void {
  console.error(
    `${what}: ${r.config.hosts} hosts, all ${r.started}/${r.containers} started by ${r.all_started_s.toFixed(3)} s ` +
      `(p50 ${r.p50_s.toFixed(3)}), egress ${r.registry_egress_ratio.toFixed(3)}× [${r.wall_s.toFixed(1)} s wall]`,
  );
}

/** Validation against docs/bench/p2p.json and the real-process numbers, into `report`. */
function addMeasured(report: ScaleReport, base: ScenarioConfig, cost: HostCost): void {
  const validation = validate(join(DOCS, 'p2p.json'), { ...base, hostFixedS: cost.agent_fixed_cpu_s });
  for (const v of validation.rows) console.error(`validation ${v.hosts} hosts: ${JSON.stringify(v)}`);
  const agentsPath = join(DOCS, 'scale-agents.json');
  const agents = existsSync(agentsPath) ? (JSON.parse(readFileSync(agentsPath, 'utf8')) as RealAgents) : null;
  report.validation = validation.rows;
  report.validation_note = validation.note;
  report.validation_max_rel_error = validation.maxRelError;
  report.real = agents;
  report.real_agents = agents?.agents ?? null;
  const root = agents ? rootPer1000Peers(agents, rootWork(report)) : null;
  report.root_cpu_core_per_1000_peers = root?.cores ?? null;
  report.root_mb_per_1000_peers = root?.mb ?? null;
  report.root_per_1000_peers = root;
}

async function write(report: ScaleReport): Promise<void> {
  await mkdir(DOCS, { recursive: true });
  await writeFile(join(DOCS, 'scale.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(join(DOCS, 'scale.md'), renderMarkdown(report));
  await writeFile(join(DOCS, 'scale.svg'), renderSvg(report));
  console.error(`wrote ${join(DOCS, 'scale.{json,md,svg}')}`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const warm = warmStartOf('python');
  const cost = hostCost();
  const hostChunkS = cost.agent_cpu_ms_per_chunk / 1000;
  // The ideal model: network and start time only. The measured one adds the agent's CPU per chunk.
  const base: ScenarioConfig = { ...DEFAULT_SCENARIO, warmStartS: warm };
  const measured: ScenarioConfig = { ...base, hostChunkS };
  if (values.refresh) {
    const report = JSON.parse(readFileSync(join(DOCS, 'scale.json'), 'utf8')) as ScaleReport;
    addMeasured(report, measured, cost);
    await write(report);
    return;
  }
  const reads = loadStartReads('python');
  const plans = new Map<number, StartPlan>();
  const planFor = (chunkSize: number) => {
    let p = plans.get(chunkSize);
    if (!p) plans.set(chunkSize, (p = planStart(reads, chunkSize)));
    return p;
  };
  const plan = planFor(DEFAULT_SCENARIO.chunkSize);
  console.error(`warm start ${warm.toFixed(3)} s; measured agent CPU per chunk ${(hostChunkS * 1000).toFixed(2)} ms`);
  const run = (c: ScenarioConfig, what: string, p = plan) => {
    const r = runScenario(c, p);
    log(r, what);
    return r;
  };

  // Time to started against hosts: the measured model (our agent's CPU per chunk) and the ideal
  // one (no per-chunk cost: network and start time only).
  const scaling = hostCounts.map((hosts) => ({
    hosts,
    measured: strip(run({ ...measured, hosts }, 'scaling')),
    ideal: strip(run({ ...base, hosts }, 'scaling ideal')),
  }));

  const at = { ...measured, hosts: sweepHosts };
  const headline = run(at, 'headline');
  const sweeps: SweepRow[] = [];
  for (const fanout of [2, 4, 8, 16]) {
    sweeps.push(row('fan-out', fanout, run({ ...at, fanout, rootFanout: fanout }, `fanout ${fanout}`)));
  }
  for (const chunkSize of [256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20]) {
    // Measured at 1 MiB only: the agent's CPU is taken to scale with the chunk's bytes.
    const chunkS = hostChunkS * (chunkSize / DEFAULT_SCENARIO.chunkSize);
    const r = run({ ...at, chunkSize, hostChunkS: chunkS }, `chunk ${chunkSize}`, planFor(chunkSize));
    sweeps.push(row('chunk size', `${chunkSize >> 10} KiB`, r));
  }
  // Pull-push only matters when a child has not asked yet: hosts starting at different moments,
  // without their own trace prefetch; shown in the ideal model too (no per-chunk host work).
  for (const [model, c] of [['measured', at]] as const) {
    for (const prefetch of [true, false]) {
      for (const push of [true, false]) {
        const r = run(
          { ...c, push, prefetchWorkers: prefetch ? DEFAULT_SCENARIO.prefetchWorkers : 0, startSpreadS: 0.5 },
          'push',
        );
        const value = `${model}: push ${push ? 'on' : 'off'}, trace prefetch ${prefetch ? 'on' : 'off'}`;
        sweeps.push(row('pull-push (starts spread over 0.5 s)', value, r));
      }
    }
  }
  for (const roots of [1, 2, 4]) sweeps.push(row('roots', roots, run({ ...at, roots }, `roots ${roots}`)));
  // 5% of hosts die when half of all chunk arrivals of the fault-free run have happened.
  const failAtS = headline.arrival_median_s;
  const failures: SweepRow[] = [];
  // The agent's deadline and hedging first (the headline), then without hedging, then fixed
  // deadlines (no hedging either): the old 10 s, and 1 s.
  for (const [value, c] of [
    [`agent: hedge a parent silent for 1.5× the expected transfer (250 ms floor), deadline as below`, {}],
    [`the same at fan-out 8`, { fanout: 8, rootFanout: 8 }],
    [`the same at fan-out 16`, { fanout: 16, rootFanout: 16 }],
    [
      `agent without hedging: TransferDeadline for peers (1 s floor), ${at.deadlineMs / 1000} s for the root`,
      { hedge: false },
    ],
    ['fixed 10 s', { adaptiveDeadline: false, deadlineMs: 10_000 }],
    ['fixed 1 s', { adaptiveDeadline: false, deadlineMs: 1000 }],
  ] as const) {
    const r = run({ ...at, ...c, failFraction: 0.05, failAtS }, `5% die, deadline ${value}`);
    failures.push(row('5% of hosts die mid-transfer', value, r));
  }

  const withFailures = failures[0]!.result;
  const report: ScaleReport = {
    name: 'scale',
    title: `Scale: ${headline.containers} containers on ${sweepHosts} simulated hosts, driven by the real src/p2p logic`,
    date: new Date().toISOString(),
    node: process.version,
    sim_hosts: sweepHosts,
    sim_containers: headline.containers,
    sim_all_started_s: headline.all_started_s,
    sim_registry_egress_ratio: headline.registry_egress_ratio,
    sim_all_started_s_with_failures:
      withFailures.started === withFailures.containers ? withFailures.all_started_s : null,
    validation_max_rel_error: null,
    real_agents: null,
    root_cpu_core_per_1000_peers: null,
    root_mb_per_1000_peers: null,
    model: {
      workload: reads.note,
      warm_start_s: warm,
      warm_start_source:
        'docs/bench/coldstart.json: the fastest dadi-warm python run over its links (its machine was loaded: the others are slower by contention)',
      host_chunk_s: hostChunkS,
      host_fixed_s: cost.agent_fixed_cpu_s,
      host_chunk_source: `measured: one agent's CPU per chunk (bench/scale/agents.ts --host-cost, docs/bench/scale-host-cost.json: ${cost.note}), on a core of the host's own`,
      needed_bytes: plan.neededBytes,
      layers: plan.layerSizes.length,
      ideal_all_started_s: scaling.find((s) => s.hosts === sweepHosts)?.ideal.all_started_s ?? null,
      defaults: measured,
      failure_at_s: failAtS,
    },
    headline: strip(headline),
    scaling,
    sweeps,
    failures,
    validation: [],
    validation_note: '',
    real: null,
    total_s: (performance.now() - started) / 1000,
  };
  addMeasured(report, measured, cost);
  await write(report);
}

await main();
