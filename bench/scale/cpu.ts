// Where a simulated host's CPU work runs. A datacenter host has cores of its own: its daemon works
// through received chunks one at a time (Node runs the agent on one thread) and its containers
// compute on other cores, so hosts never slow each other down. The validation machine is the
// opposite: bench/p2p runs N daemons and their containers on one machine with 2 cores, so every
// piece of work shares those cores — max-min fairly, like flows share a link, each process capped
// at one core. That sharing reuses the network model (network.ts) with CPU time for bytes.
//
//   const cpu = sharedCores(sim, 2);           // or ownCores(sim)
//   cpu.daemon('h1', 0.004, () => stored());   // the agent's work on one chunk
//   cpu.container('h1', 0.05, () => next());   // a slice of a container's start

import { Network, type Nic } from './network.js';
import type { Simulation } from './simulation.js';

export interface Cpu {
  /** `seconds` of one core's work by `host`'s daemon, then `then`. */
  daemon(host: string, seconds: number, then: () => void): void;
  /** `seconds` of one core's work by a container on `host`, then `then`. */
  container(host: string, seconds: number, then: () => void): void;
}

/** Each host has its own cores: the daemon's work queues on one of them, containers never wait. */
export function ownCores(sim: Simulation): Cpu {
  const busyUntil = new Map<string, number>();
  return {
    daemon(host, seconds, then) {
      if (seconds <= 0) return then();
      const at = Math.max(sim.now, busyUntil.get(host) ?? 0) + seconds;
      busyUntil.set(host, at);
      sim.at(at, then);
    },
    container(_host, seconds, then) {
      sim.after(seconds, then);
    },
  };
}

/** CPU time as network bytes: a core does this many units per second. */
const UNITS_PER_CORE_S = 1e6;

/**
 * Every host's work shares `cores` cores: each daemon is capped at one core, a host's containers
 * together at one core each (bench/p2p runs one container per host).
 */
export function sharedCores(sim: Simulation, cores: number, containersPerHost = 1): Cpu {
  const net = new Network(sim, { latency: 0 });
  const machine = net.nic('machine', { up: cores * UNITS_PER_CORE_S });
  const procs = new Map<string, Nic>();
  const proc = (name: string, cap: number) => {
    let n = procs.get(name);
    if (!n) procs.set(name, (n = net.nic(name, { up: cap * UNITS_PER_CORE_S })));
    return n;
  };
  const work = (from: Nic, seconds: number, then: () => void) => {
    if (seconds <= 0) return then();
    net.send(from, machine, seconds * UNITS_PER_CORE_S, { onDone: then });
  };
  return {
    daemon: (host, seconds, then) => work(proc(`${host}.daemon`, 1), seconds, then),
    container: (host, seconds, then) => work(proc(`${host}.containers`, containersPerHost), seconds, then),
  };
}
