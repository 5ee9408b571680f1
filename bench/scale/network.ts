// The simulated network: each node has a NIC with an upload and a download link; a transfer is a
// flow over the sender's upload link and the receiver's download link, and concurrent flows share
// links max-min fairly (progressive filling, recomputed whenever a flow starts or ends, over only
// the flows that share a link with it, directly or through other flows). Bytes arrive one one-way
// latency after the flow's last byte left. Control messages cost latency only. A failed NIC ends
// its flows at once: their `onFail` runs, bytes sent so far stay counted. Not a packet model: no
// TCP slow start, no queues; not who sends what (the host model decides that).
//
//   const net = new Network(sim, { latency: 0.0001 });
//   const a = net.nic('a', gbit(10)), b = net.nic('b', gbit(10));
//   net.send(a, b, 1 << 20, { onDone: () => ..., onFail: () => ... });

import { MinHeap } from './min-heap.js';
import type { Scheduled, Simulation } from './simulation.js';

/** Bytes per second of `n` Gbit/s. */
export const gbit = (n: number): number => (n * 1e9) / 8;

export interface Link {
  readonly name: string;
  /** Bytes per second. */
  readonly capacity: number;
  readonly flows: Set<Flow>;
  /** Bytes that finished crossing this link (counted when a flow ends or fails). */
  bytes: number;
}

export interface Nic {
  readonly name: string;
  readonly up: Link;
  readonly down: Link;
  alive: boolean;
}

export interface NicSpeed {
  /** Upload bytes per second. */
  up: number;
  /** Download bytes per second (default: as up). */
  down?: number;
}

export interface TransferCallbacks {
  /** All bytes arrived at the receiver. */
  onDone: () => void;
  /** The sender or the receiver failed first. */
  onFail?: () => void;
}

export interface Transfer {
  readonly from: Nic;
  readonly to: Nic;
  readonly bytes: number;
  /** Bytes per second now (0 once ended). */
  readonly rate: number;
  /** Ends the transfer without calling either callback; bytes sent so far stay counted. */
  cancel(): void;
}

interface Flow {
  readonly transfer: Transfer;
  readonly path: readonly Link[];
  readonly callbacks: TransferCallbacks;
  remaining: number;
  /** Bytes per second, 0 until the first allocation. */
  rate: number;
  updatedAt: number;
  finish: Scheduled | undefined;
  /** Allocation round in which the rate was fixed (progressive filling). */
  frozenIn: number;
}

/** Per-link state of one allocation round. */
interface Fill {
  residual: number;
  open: number;
  version: number;
}

export interface NetworkOptions {
  /** One-way latency of every hop, seconds. */
  latency: number;
}

export class Network {
  private readonly nics = new Map<string, Nic>();
  private round = 0;

  constructor(
    private readonly sim: Simulation,
    readonly options: NetworkOptions,
  ) {}

  /** A new NIC; names are unique. */
  nic(name: string, speed: NicSpeed): Nic {
    if (this.nics.has(name)) throw new Error(`network: NIC ${name} exists`);
    const link = (dir: string, capacity: number): Link => {
      if (!(capacity > 0)) throw new Error(`network: ${name} ${dir} capacity must be > 0, got ${capacity}`);
      return { name: `${name}.${dir}`, capacity, flows: new Set(), bytes: 0 };
    };
    const nic: Nic = { name, up: link('up', speed.up), down: link('down', speed.down ?? speed.up), alive: true };
    this.nics.set(name, nic);
    return nic;
  }

  /** A control message: runs `onArrive` one latency later if both ends are still alive then. */
  message(from: Nic, to: Nic, onArrive: () => void): void {
    if (!from.alive || !to.alive) return;
    this.sim.after(this.options.latency, () => {
      if (to.alive) onArrive();
    });
  }

  /** Start sending `bytes` from `from` to `to` now. */
  send(from: Nic, to: Nic, bytes: number, callbacks: TransferCallbacks): Transfer {
    if (!(bytes >= 0)) throw new Error(`network: cannot send ${bytes} bytes`);
    const transfer: Transfer = {
      from,
      to,
      bytes,
      get rate() {
        return flow.rate;
      },
      cancel: () => this.end(flow, 'cancel'),
    };
    const flow: Flow = {
      transfer,
      path: from === to ? [] : [from.up, to.down],
      callbacks,
      remaining: bytes,
      rate: 0,
      updatedAt: this.sim.now,
      finish: undefined,
      frozenIn: -1,
    };
    if (!from.alive || !to.alive) {
      this.sim.after(0, () => callbacks.onFail?.());
      return transfer;
    }
    if (flow.path.length === 0 || bytes === 0) {
      flow.finish = this.sim.after(flow.path.length === 0 ? 0 : this.options.latency, () => callbacks.onDone());
      return transfer;
    }
    for (const l of flow.path) l.flows.add(flow);
    this.reallocate(flow.path);
    return transfer;
  }

  /** Take a NIC down: its flows fail (their `onFail` runs now) and later sends to or from it fail. */
  fail(nic: Nic): void {
    if (!nic.alive) return;
    nic.alive = false;
    const flows = new Set([...nic.up.flows, ...nic.down.flows]);
    for (const f of flows) this.end(f, 'fail');
  }

  /** The current rate of every flow on `link` (for tests and reports). */
  rates(link: Link): number[] {
    return [...link.flows].map((f) => f.rate);
  }

  private end(flow: Flow, why: 'done' | 'fail' | 'cancel'): void {
    if (flow.path.length === 0 || !flow.path[0]!.flows.has(flow)) {
      // A local or empty transfer, or one that already ended.
      if (why !== 'done') flow.finish?.cancel();
      return;
    }
    this.settle(flow);
    flow.finish?.cancel();
    const sent = flow.transfer.bytes - (why === 'done' ? 0 : flow.remaining);
    flow.rate = 0;
    for (const l of flow.path) {
      l.flows.delete(flow);
      l.bytes += sent;
    }
    this.reallocate(flow.path);
    if (why === 'done') this.sim.after(this.options.latency, () => flow.callbacks.onDone());
    else if (why === 'fail') flow.callbacks.onFail?.();
  }

  private settle(flow: Flow): void {
    const now = this.sim.now;
    flow.remaining = Math.max(0, flow.remaining - flow.rate * (now - flow.updatedAt));
    flow.updatedAt = now;
  }

  /** Max-min fair rates for every flow connected to `seeds` through shared links. */
  private reallocate(seeds: readonly Link[]): void {
    const links = new Set<Link>();
    const flows: Flow[] = [];
    const seen = new Set<Flow>();
    const stack = [...seeds];
    while (stack.length > 0) {
      const l = stack.pop()!;
      if (links.has(l)) continue;
      links.add(l);
      for (const f of l.flows) {
        if (seen.has(f)) continue;
        seen.add(f);
        flows.push(f);
        for (const m of f.path) if (!links.has(m)) stack.push(m);
      }
    }
    for (const f of flows) this.settle(f);

    const round = ++this.round;
    const fill = new Map<Link, Fill>();
    type Entry = { share: number; link: Link; version: number };
    const heap = new MinHeap<Entry>((a, b) => a.share < b.share);
    for (const l of links) {
      if (l.flows.size === 0) continue;
      fill.set(l, { residual: l.capacity, open: l.flows.size, version: 0 });
      heap.push({ share: l.capacity / l.flows.size, link: l, version: 0 });
    }
    const newRate = new Map<Flow, number>();
    for (;;) {
      const e = heap.pop();
      if (e === undefined) break;
      const st = fill.get(e.link)!;
      if (e.version !== st.version || st.open === 0) continue;
      const share = Math.max(e.share, 0);
      for (const f of e.link.flows) {
        if (f.frozenIn === round) continue;
        f.frozenIn = round;
        newRate.set(f, share);
        for (const m of f.path) {
          const s = fill.get(m)!;
          s.residual -= share;
          s.open--;
          s.version++;
          if (m !== e.link && s.open > 0) heap.push({ share: s.residual / s.open, link: m, version: s.version });
        }
      }
    }
    for (const f of flows) {
      const rate = newRate.get(f)!;
      if (rate === f.rate && f.finish !== undefined) continue;
      f.rate = rate;
      f.finish?.cancel();
      f.finish = rate > 0 ? this.sim.after(f.remaining / rate, () => this.end(f, 'done')) : undefined;
    }
  }
}
