// The simulated network: each node has a NIC with an upload and a download link; a transfer is a
// flow over the sender's upload link and the receiver's download link, and concurrent flows share
// links max-min fairly (progressive filling, recomputed whenever a flow starts or ends, over only
// the flows that share a link with it, directly or through other flows). Bytes arrive one one-way
// latency after the flow's last byte left. Control messages cost latency only. A failed NIC ends
// its flows at once: their `onFail` runs, bytes sent so far stay counted. Not a packet model: no
// TCP slow start, no queues; not who sends what (the host model decides that).
//
// Flows between the same two NICs always get the same rate, so they are kept as one group served
// like a processor-sharing queue: the group counts the bytes each of its flows has been sent so
// far, and only its next flow to finish has an event. A host serving 30 chunks to a child then
// costs one group, not 30 flows, in every reallocation.
//
//   const net = new Network(sim, { latency: 0.0001 });
//   const a = net.nic('a', { up: gbit(10) }), b = net.nic('b', { up: gbit(10) });
//   net.send(a, b, 1 << 20, { onDone: () => ..., onFail: () => ... });

import { MinHeap } from './min-heap.js';
import type { Scheduled, Simulation } from './simulation.js';

/** Bytes per second of `n` Gbit/s. */
export const gbit = (n: number): number => (n * 1e9) / 8;

export interface Link {
  readonly name: string;
  /** Bytes per second. */
  readonly capacity: number;
  /** Groups of flows crossing this link. */
  readonly groups: Set<Group>;
  /** Flows crossing this link. */
  flowCount: number;
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
  readonly bytes: number;
  readonly callbacks: TransferCallbacks;
  /** The group's per-flow service count at which this flow has been sent everything. */
  readonly threshold: number;
  active: boolean;
}

/** The flows from one NIC to another. */
interface Group {
  readonly key: string;
  readonly path: readonly [Link, Link];
  readonly flows: MinHeap<Flow>;
  /** Flows still active (the heap may hold ended ones until they reach its top). */
  size: number;
  /** Bytes each flow of the group has been sent since the group was created. */
  service: number;
  /** Bytes per second per flow. */
  rate: number;
  updatedAt: number;
  finish: Scheduled | undefined;
  /** The flow `finish` was scheduled for. */
  finishFor: Flow | undefined;
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
  private readonly groups = new Map<string, Group>();
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
      return { name: `${name}.${dir}`, capacity, groups: new Set(), flowCount: 0, bytes: 0 };
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
    if (!from.alive || !to.alive) {
      this.sim.after(0, () => callbacks.onFail?.());
      return { from, to, bytes, rate: 0, cancel: () => {} };
    }
    if (from === to || bytes === 0) {
      const done = this.sim.after(from === to ? 0 : this.options.latency, () => callbacks.onDone());
      return { from, to, bytes, rate: 0, cancel: () => done.cancel() };
    }
    const key = `${from.name}>${to.name}`;
    let g = this.groups.get(key);
    if (!g) {
      g = {
        key,
        path: [from.up, to.down],
        flows: new MinHeap<Flow>((a, b) => a.threshold < b.threshold),
        size: 0,
        service: 0,
        rate: 0,
        updatedAt: this.sim.now,
        finish: undefined,
        finishFor: undefined,
        frozenIn: -1,
      };
      this.groups.set(key, g);
      for (const l of g.path) l.groups.add(g);
    }
    this.settle(g);
    const flow: Flow = { bytes, callbacks, threshold: g.service + bytes, active: true };
    g.flows.push(flow);
    g.size++;
    for (const l of g.path) l.flowCount++;
    this.reallocate(g.path);
    const group = g;
    return {
      from,
      to,
      bytes,
      get rate() {
        return flow.active ? group.rate : 0;
      },
      cancel: () => this.stop(group, flow, 'cancel'),
    };
  }

  /** Take a NIC down: its flows fail (their `onFail` runs now) and later sends to or from it fail. */
  fail(nic: Nic): void {
    if (!nic.alive) return;
    nic.alive = false;
    const groups = new Set([...nic.up.groups, ...nic.down.groups]);
    const failed: Flow[] = [];
    for (const g of groups) {
      this.settle(g);
      for (let f = g.flows.pop(); f !== undefined; f = g.flows.pop()) {
        if (!f.active) continue;
        this.count(g, f, f.bytes - (f.threshold - g.service));
        failed.push(f);
      }
      this.drop(g);
    }
    const seeds = [...groups].flatMap((g) => g.path);
    this.reallocate(seeds);
    for (const f of failed) f.callbacks.onFail?.();
  }

  /** Whether bytes are moving from `from` to `to` right now (what a receiver sees as progress). */
  flowing(from: Nic, to: Nic): boolean {
    const g = this.groups.get(`${from.name}>${to.name}`);
    return g !== undefined && g.size > 0 && g.rate > 0;
  }

  /** The current rate of every flow on `link` (for tests and reports). */
  rates(link: Link): number[] {
    return [...link.groups].flatMap((g) => Array<number>(g.size).fill(g.rate));
  }

  /** Mark a flow ended and count the bytes it sent. */
  private count(g: Group, f: Flow, sent: number): void {
    f.active = false;
    g.size--;
    for (const l of g.path) {
      l.flowCount--;
      l.bytes += Math.max(0, Math.min(f.bytes, sent));
    }
  }

  private stop(g: Group, f: Flow, why: 'cancel'): void {
    if (!f.active || why !== 'cancel') return;
    this.settle(g);
    this.count(g, f, f.bytes - (f.threshold - g.service));
    if (g.size === 0) this.drop(g);
    this.reallocate(g.path);
  }

  /** The group's first flow(s) finished: deliver them, then share the links anew. */
  private finishHead(g: Group): void {
    g.finish = undefined;
    g.finishFor = undefined;
    this.settle(g);
    const done: Flow[] = [];
    // Flows within a thousandth of a byte of their end finish together: float rounding of the
    // clock must never leave a flow a fraction of a byte short, rescheduled at the same instant.
    const reached = g.service + Math.max(1e-3, g.service * 1e-9);
    for (let f = g.flows.peek(); f !== undefined && f.threshold <= reached; f = g.flows.peek()) {
      g.flows.pop();
      if (!f.active) continue;
      this.count(g, f, f.bytes);
      done.push(f);
    }
    if (g.size === 0) this.drop(g);
    this.reallocate(g.path);
    for (const f of done) this.sim.after(this.options.latency, () => f.callbacks.onDone());
  }

  private drop(g: Group): void {
    g.finish?.cancel();
    g.finish = undefined;
    g.finishFor = undefined;
    g.rate = 0;
    if (this.groups.get(g.key) === g) this.groups.delete(g.key);
    for (const l of g.path) l.groups.delete(g);
  }

  private settle(g: Group): void {
    const now = this.sim.now;
    g.service += g.rate * (now - g.updatedAt);
    g.updatedAt = now;
  }

  /** Max-min fair rates for every group connected to `seeds` through shared links. */
  private reallocate(seeds: readonly Link[]): void {
    const links = new Set<Link>();
    const groups: Group[] = [];
    const seen = new Set<Group>();
    const stack = [...seeds];
    while (stack.length > 0) {
      const l = stack.pop()!;
      if (links.has(l)) continue;
      links.add(l);
      for (const g of l.groups) {
        if (seen.has(g)) continue;
        seen.add(g);
        groups.push(g);
        for (const m of g.path) if (!links.has(m)) stack.push(m);
      }
    }
    for (const g of groups) this.settle(g);

    const round = ++this.round;
    const fill = new Map<Link, Fill>();
    type Entry = { share: number; link: Link; version: number };
    const heap = new MinHeap<Entry>((a, b) => a.share < b.share);
    for (const l of links) {
      if (l.flowCount === 0) continue;
      fill.set(l, { residual: l.capacity, open: l.flowCount, version: 0 });
      heap.push({ share: l.capacity / l.flowCount, link: l, version: 0 });
    }
    const newRate = new Map<Group, number>();
    for (;;) {
      const e = heap.pop();
      if (e === undefined) break;
      const st = fill.get(e.link)!;
      if (e.version !== st.version || st.open === 0) continue;
      const share = Math.max(e.share, 0);
      for (const g of e.link.groups) {
        if (g.frozenIn === round || g.size === 0) continue;
        g.frozenIn = round;
        newRate.set(g, share);
        for (const m of g.path) {
          const s = fill.get(m)!;
          s.residual -= share * g.size;
          s.open -= g.size;
          s.version++;
          if (m !== e.link && s.open > 0) heap.push({ share: s.residual / s.open, link: m, version: s.version });
        }
      }
    }
    for (const g of groups) {
      const rate = newRate.get(g) ?? 0;
      while (g.flows.peek() && !g.flows.peek()!.active) g.flows.pop();
      const head = g.flows.peek();
      if (rate === g.rate && head === g.finishFor && g.finish !== undefined) continue;
      g.rate = rate;
      g.finish?.cancel();
      g.finish = undefined;
      g.finishFor = head;
      if (head && rate > 0) {
        const group = g;
        g.finish = this.sim.after(Math.max(0, head.threshold - g.service) / rate, () => this.finishHead(group));
      }
    }
  }
}
