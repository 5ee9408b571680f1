// One simulated run: N hosts (each with C containers) all start the same image at once (or spread
// over a window) through one registry and R roots; optionally some hosts die at a given time. Builds the network and the
// cluster from a config, runs the simulation, and summarises it: container start-time percentiles,
// registry egress against one copy of the needed bytes, per-host upload, failures handled.
//
//   const r = runScenario({ ...DEFAULT_SCENARIO, hosts: 100 }, planStart(loadStartReads(), CHUNK_SIZE));

import { CHUNK_SIZE, seededRandom } from '../../src/p2p/index.js';
import { DEFAULT_REPLAY_WORKERS } from '../../src/prefetch/trace-replay.js';
import { agentDeadline, Cluster, fixedDeadline, type SimRoot } from './cluster.js';
import { replayTrace, startContainer } from './containers.js';
import { ownCores, sharedCores } from './cpu.js';
import { gbit, Network } from './network.js';
import { Simulation } from './simulation.js';
import type { StartPlan } from './workload.js';

export interface ScenarioConfig {
  hosts: number;
  containersPerHost: number;
  /** Every host's NIC, each way (Gbit/s). */
  hostGbit: number;
  rootGbit: number;
  /** The registry's egress (its NIC, each way). */
  registryGbit: number;
  /** One-way latency of every hop (seconds). */
  latencyS: number;
  chunkSize: number;
  fanout: number;
  /** Children directly under each root per blob. */
  rootFanout: number;
  roots: number;
  push: boolean;
  pushWindow: number;
  /** Hosts replay the recorded trace at start (trace prefetch) with this many workers; 0 = off. */
  prefetchWorkers: number;
  /** Hosts begin their starts at uniformly random times in [0, this) (seconds; 0: all at once). */
  startSpreadS: number;
  /** A container start with every chunk local (seconds): the measured warm start. */
  warmStartS: number;
  registryRequestS: number;
  rootRequestS: number;
  peerRequestS: number;
  /**
   * Every host's deadline for a chunk request (ms; see cluster.ts): with `adaptiveDeadline`, the
   * agent's — src/p2p's TransferDeadline for peers, capped at this, the root gets all of it; else
   * this for every request (the agent's old fixed deadline).
   */
  deadlineMs: number;
  adaptiveDeadline: boolean;
  /** With the adaptive deadline: hedge a silent peer's request to the next hop up (the agent does). */
  hedge: boolean;
  /** The adaptive deadline's floor (ms; the agent's is 1 s). */
  deadlineFloorMs: number;
  /** The agent's CPU per received chunk (seconds of one core), measured by agents.ts; see run.ts. */
  hostChunkS: number;
  /** A fresh agent's one-time CPU before its first chunk (seconds); 0 for long-running daemons. */
  hostFixedS: number;
  /**
   * 0: each host has cores of its own (a datacenter). Otherwise every host's daemon and container
   * work shares this many cores (the validation machine: bench/p2p's hosts on one 2-core machine).
   */
  sharedCores: number;
  /** With shared cores: CPU seconds other processes (the root, the registry) take from them, from the start. */
  sharedBackgroundS: number;
  /** Fraction of hosts that die at `failAtS` (0 = none). */
  failFraction: number;
  failAtS: number;
  seed: number;
}

/** Defaults: a 10 Gbit/s datacenter, 1 MiB chunks, pull-push on, one root. Times in seconds. */
export const DEFAULT_SCENARIO: ScenarioConfig = {
  hosts: 1000,
  containersPerHost: 10,
  hostGbit: 10,
  rootGbit: 10,
  registryGbit: 1,
  latencyS: 0.0001,
  chunkSize: CHUNK_SIZE,
  fanout: 4,
  rootFanout: 4,
  roots: 1,
  push: true,
  pushWindow: 4,
  prefetchWorkers: DEFAULT_REPLAY_WORKERS,
  startSpreadS: 0,
  warmStartS: 1,
  // ENVIRONMENT.md: docker-registry answers a range GET in ~4 ms at best.
  registryRequestS: 0.004,
  rootRequestS: 0.0005,
  peerRequestS: 0.0005,
  // The agent's deadline for one chunk request (src/swarm/agent.ts chunkTimeoutMs default).
  deadlineMs: 10_000,
  adaptiveDeadline: true,
  hedge: true,
  deadlineFloorMs: 1000,
  hostChunkS: 0,
  hostFixedS: 0,
  sharedCores: 0,
  sharedBackgroundS: 0,
  failFraction: 0,
  failAtS: 0,
  seed: 1,
};

export interface ScenarioResult {
  config: ScenarioConfig;
  /** Containers on hosts that stayed up, and how many of them started. */
  containers: number;
  started: number;
  /** Seconds until 50/90/99/100% of those containers had started. */
  p50_s: number;
  p90_s: number;
  p99_s: number;
  all_started_s: number;
  /** One copy of the chunks a start needs, and what the registry sent. */
  needed_bytes: number;
  registry_bytes: number;
  registry_egress_ratio: number;
  registry_requests: number;
  /** Bytes the roots uploaded, and each live host's upload: mean and max. */
  root_upload_bytes: number;
  host_upload_mean_bytes: number;
  host_upload_max_bytes: number;
  /** Hosts killed, chunk requests that failed and were re-routed, re-parentings, registry fallbacks. */
  dead_hosts: number;
  failed_requests: number;
  reparents: number;
  registry_fallbacks: number;
  pushed_chunks: number;
  /** Chunk requests hosts sent that were answered (pushed chunks need none). */
  host_requests: number;
  /** Chunk requests to a slow peer that were also sent to the next hop up (hedged). */
  hedged_requests: number;
  /** Hedge races won and lost, and the gate's refusals (src/p2p HedgeGate: in-flight cap, the root's budget). */
  hedge_gate: { won: number; lost: number; capped: number; root_denied: number };
  /** When half of all chunk arrivals (at hosts and roots) had happened: "mid-transfer". */
  arrival_median_s: number;
  /** Simulated events and the wall time the simulation took. */
  events: number;
  wall_s: number;
}

/** Run one scenario to completion (bounded: an error if it does not settle). */
export function runScenario(config: ScenarioConfig, plan: StartPlan): ScenarioResult {
  if (plan.chunkSize !== config.chunkSize) throw new Error('scenario: plan and config chunk sizes differ');
  const wall = performance.now();
  const sim = new Simulation();
  const net = new Network(sim, { latency: config.latencyS });
  const random = seededRandom(config.seed);
  const cpu = config.sharedCores > 0 ? sharedCores(sim, config.sharedCores, config.containersPerHost) : ownCores(sim);
  const cluster = new Cluster(sim, net, {
    layerSizes: plan.layerSizes,
    chunkSize: config.chunkSize,
    fanout: config.fanout,
    rootFanout: config.rootFanout,
    push: config.push,
    pushWindow: config.pushWindow,
    registryRequestS: config.registryRequestS,
    rootRequestS: config.rootRequestS,
    peerRequestS: config.peerRequestS,
    deadline: config.adaptiveDeadline
      ? agentDeadline(config.deadlineMs, config.deadlineFloorMs, config.hedge)
      : fixedDeadline(config.deadlineMs),
    hostChunkS: config.hostChunkS,
    hostFixedS: config.hostFixedS,
    cpu,
    random,
  });
  cluster.addRegistry(net.nic('registry', { up: gbit(config.registryGbit) }));
  const roots: SimRoot[] = [];
  for (let r = 0; r < config.roots; r++)
    roots.push(cluster.addRoot(`root${r}`, net.nic(`root${r}`, { up: gbit(config.rootGbit) })));
  if (config.sharedCores > 0 && config.sharedBackgroundS > 0)
    cpu.daemon('background', config.sharedBackgroundS, () => {});
  const startTimes: number[] = [];
  const hostOf: number[] = [];
  for (let i = 0; i < config.hosts; i++) {
    // Hosts spread over the roots evenly, as agents given a list of roots pick one at random.
    const host = cluster.addHost(`h${i}`, net.nic(`h${i}`, { up: gbit(config.hostGbit) }), roots[i % roots.length]!);
    sim.at(config.startSpreadS * random(), () => {
      if (config.prefetchWorkers > 0) replayTrace(host, plan.chunks, config.prefetchWorkers);
      for (let k = 0; k < config.containersPerHost; k++) {
        startContainer(
          sim,
          host,
          plan,
          config.warmStartS,
          (t) => {
            startTimes.push(t);
            hostOf.push(i);
          },
          (seconds, then) => cpu.container(host.id, seconds, then),
        );
      }
    });
  }
  const dead = new Set<number>();
  if (config.failFraction > 0) {
    const n = Math.round(config.hosts * config.failFraction);
    const order = cluster.hosts.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order.slice(0, n)) dead.add(i);
    sim.at(config.failAtS, () => {
      for (const i of dead) cluster.hosts[i]!.die();
    });
  }
  sim.run({ maxEvents: 200_000_000 });

  // A container counts when its host stayed up; one that started before its host died is not counted.
  const times = startTimes.filter((_, k) => !dead.has(hostOf[k]!)).sort((a, b) => a - b);
  const containers = (config.hosts - dead.size) * config.containersPerHost;
  const q = (p: number) => (times.length < containers ? Number.POSITIVE_INFINITY : quantile(times, p));
  const live = cluster.hosts.filter((_, i) => !dead.has(i));
  const uploads = live.map((h) => h.nic.up.bytes);
  const counters = cluster.hosts.map((h) => h.counters.snapshot());
  const sum = (f: (s: (typeof counters)[number]) => number) => counters.reduce((a, s) => a + f(s), 0);
  return {
    config,
    containers,
    started: times.length,
    p50_s: q(0.5),
    p90_s: q(0.9),
    p99_s: q(0.99),
    all_started_s: q(1),
    needed_bytes: plan.neededBytes,
    registry_bytes: cluster.registry.nic.up.bytes,
    registry_egress_ratio: cluster.registry.nic.up.bytes / plan.neededBytes,
    registry_requests: cluster.registry.requests,
    root_upload_bytes: roots.reduce((a, r) => a + r.nic.up.bytes, 0),
    host_upload_mean_bytes: uploads.reduce((a, b) => a + b, 0) / Math.max(1, uploads.length),
    host_upload_max_bytes: Math.max(0, ...uploads),
    dead_hosts: dead.size,
    failed_requests: sum((s) => s.failures.peer + s.failures.root + s.failures.registry),
    reparents: sum((s) => s.reparents),
    registry_fallbacks: sum((s) => s.registryFallbacks),
    pushed_chunks: sum((s) => s.pushedChunks) + roots.reduce((a, r) => a + r.counters.snapshot().pushedChunks, 0),
    host_requests: sum((s) => s.requests.peer + s.requests.root + s.requests.registry),
    hedged_requests: sum((s) => s.hedgedRequests),
    hedge_gate: cluster.hosts.reduce(
      (a, h) => ({
        won: a.won + h.gate.stats.won,
        lost: a.lost + h.gate.stats.lost,
        capped: a.capped + h.gate.stats.capped,
        root_denied: a.root_denied + h.gate.stats.rootDenied,
      }),
      { won: 0, lost: 0, capped: 0, root_denied: 0 },
    ),
    arrival_median_s: quantile(cluster.arrivals, 0.5),
    events: sim.events,
    wall_s: (performance.now() - wall) / 1000,
  };
}

/** The value below which a fraction `p` of the sorted `xs` lie (nearest rank). */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[rank - 1]!;
}
