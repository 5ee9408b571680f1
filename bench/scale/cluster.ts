// The simulated datacenter: a registry, one or more roots, and hosts whose agents fetch layer
// chunks through per-blob trees. Every P2P decision is src/p2p's, driven here in simulated time:
// the roots' `Tracker` places hosts and re-parents them on reports, each host's `ChunkFetch` walks
// its route (parent → ancestors → root → registry), `ChunkBook` merges concurrent requests for a
// chunk, and `PushPlanner` picks the pushes to joined children (pull-push). This module only moves
// the messages and bytes those decisions ask for over the simulated network (network.ts) and
// applies the timeouts a real agent would. Not the containers (containers.ts) nor the scenarios.

import { TransferDeadline } from '../../src/p2p/deadline.js';
import {
  ChunkBook,
  ChunkFetch,
  type FetchFailure,
  HedgeGate,
  type Hop,
  P2PCounters,
  type Placement,
  type PushOrder,
  PushPlanner,
  type Random,
  routeOf,
  Tracker,
  WAIT_HEARTBEAT_MS,
} from '../../src/p2p/index.js';
import type { Cpu } from './cpu.js';
import type { Network, Nic, Transfer } from './network.js';
import type { Simulation } from './simulation.js';

export interface ClusterOptions {
  /** Bytes of each layer blob, bottom first. */
  layerSizes: readonly number[];
  chunkSize: number;
  /** Tree fan-out k (children per host per blob) and under each root. */
  fanout: number;
  rootFanout: number;
  /** Parents push chunks to joined children (pull-push). */
  push: boolean;
  /** Pushes in flight per child. */
  pushWindow: number;
  /** Server time per chunk request before the bytes start flowing (seconds). */
  registryRequestS: number;
  rootRequestS: number;
  peerRequestS: number;
  /**
   * Each host's deadline for a chunk request to a peer or the root (one per host, as the agent
   * keeps one): asked before each request, told of each success. A request past it fails as
   * 'timeout' — a dead host is noticed only that way (its machine stalls, nothing resets).
   */
  deadline: () => DeadlinePolicy;
  /** The agent's CPU per received chunk (seconds of one core), and once per host before its first. */
  hostChunkS: number;
  hostFixedS: number;
  /** Where that work runs: each host's own cores, or cores all hosts share (cpu.ts). */
  cpu: Cpu;
  random: Random;
}

type Waiter = () => void;

/** A host's deadlines for chunk requests, told of each success. */
export interface DeadlinePolicy {
  deadlineMs(hop: 'peer' | 'root', bytes: number): number;
  /** When to hedge a request to a peer (ask the next hop up too); undefined: never. */
  hedgeMs(bytes: number): number | undefined;
  observe(bytes: number, firstByteMs: number, totalMs: number): void;
}

/** The same deadline for every request (the agent's old fixed 10 s). */
export function fixedDeadline(ms: number): () => DeadlinePolicy {
  return () => ({ deadlineMs: () => ms, hedgeMs: () => undefined, observe: () => {} });
}

/**
 * As the agent sets them (src/swarm/agent.ts): a peer gets src/p2p's TransferDeadline (the
 * measured rate, `floorMs` floor (the agent's: 1 s), `capMs` cap) and is hedged at its hedgeMs,
 * the root the whole cap (leaving it costs egress).
 */
export function agentDeadline(capMs: number, floorMs = 1000, hedge = true): () => DeadlinePolicy {
  return () => {
    const d = new TransferDeadline({ minMs: Math.min(floorMs, capMs), maxMs: capMs });
    return {
      deadlineMs: (hop, bytes) => (hop === 'peer' ? d.deadlineMs(bytes) : capMs),
      hedgeMs: (bytes) => (hedge ? d.hedgeMs(bytes) : undefined),
      observe: (bytes, firstByteMs, totalMs) => d.observe(bytes, firstByteMs, totalMs),
    };
  };
}

/** Answers a chunk request: whether the bytes arrived, and when the first of them was sent. */
type Reply = (ok: boolean, firstByteAt?: number) => void;

/** The registry: bytes of any chunk, after its per-request service time. */
export class SimRegistry {
  requests = 0;
  constructor(
    readonly nic: Nic,
    private readonly net: Network,
    private readonly sim: Simulation,
    private readonly requestS: number,
  ) {}

  /** `to` asks for `bytes`; `onDone` when they arrived. The registry never fails. */
  fetch(to: Nic, bytes: number, onDone: () => void, onFail: () => void): void {
    this.requests++;
    this.net.message(to, this.nic, () =>
      this.sim.after(this.requestS, () => this.net.send(this.nic, to, bytes, { onDone, onFail })),
    );
  }
}

/** What a node (root or host) does with a chunk request from a child. */
interface ChunkServer {
  readonly nic: Nic;
  alive(): boolean;
  serve(child: SimHost, layer: number, chunk: number, reply: Reply, abort?: Abort): void;
}

/** Lets the asker abort a request (the agent aborts a hedge race's loser): nothing more is sent. */
class Abort {
  aborted = false;
  transfer: Transfer | undefined;
  /** When the server took the request (from then on a live peer sends heartbeats). */
  acceptedAt: number | undefined;

  abort(): void {
    this.aborted = true;
    this.transfer?.cancel();
  }
}

/** One blob as a node sees it: chunks held or in flight, and who waits for which chunk. */
class BlobState {
  readonly book = new ChunkBook();
  readonly waiters = new Map<number, Waiter[]>();
  /** Chunks a parent is pushing to this node right now. */
  readonly incoming = new Set<number>();

  wait(chunk: number, w: Waiter): void {
    const list = this.waiters.get(chunk);
    if (list) list.push(w);
    else this.waiters.set(chunk, [w]);
  }

  wake(chunk: number): void {
    const list = this.waiters.get(chunk);
    if (!list) return;
    this.waiters.delete(chunk);
    for (const w of list) w();
  }
}

/** Shared by roots and hosts: the chunks they hold, the children they push to, what they sent. */
abstract class Node implements ChunkServer {
  readonly blobs: BlobState[];
  readonly planner: PushPlanner;
  readonly counters = new P2PCounters();

  constructor(
    readonly id: string,
    readonly nic: Nic,
    protected readonly c: Cluster,
  ) {
    this.blobs = c.options.layerSizes.map(() => new BlobState());
    this.planner = new PushPlanner({ window: c.options.pushWindow, idleMs: 60_000 });
  }

  alive(): boolean {
    return this.nic.alive;
  }

  has(layer: number, chunk: number): boolean {
    return this.blobs[layer]!.book.has(chunk);
  }

  /** Run `then` once this node holds the chunk, fetching it when no one is. */
  need(layer: number, chunk: number, then: Waiter): void {
    const st = this.blobs[layer]!;
    if (st.book.has(chunk)) {
      then();
      return;
    }
    st.wait(chunk, then);
    if (st.incoming.has(chunk)) return;
    if (st.book.claim(chunk)) this.fetch(layer, chunk);
  }

  /** Fetch a chunk this node claimed; ends in `stored` (or keeps trying). */
  protected abstract fetch(layer: number, chunk: number): void;

  /** The serving overhead of this kind of node. */
  protected abstract requestS(): number;

  serve(child: SimHost, layer: number, chunk: number, reply: Reply, abort?: Abort): void {
    const c = this.c;
    if (abort) abort.acceptedAt = c.sim.now;
    if (this.c.options.push) this.planner.requested(c.blobName(layer), child.id, chunk, c.nowMs());
    this.need(layer, chunk, () =>
      c.sim.after(this.requestS(), () => {
        if (abort?.aborted) return;
        const bytes = c.chunkBytes(layer, chunk);
        const at = c.sim.now;
        this.counters.served(bytes);
        const t = c.net.send(this.nic, child.nic, bytes, { onDone: () => reply(true, at), onFail: () => reply(false) });
        if (abort) abort.transfer = t;
      }),
    );
  }

  /** The chunk is here (fetched or pushed): wake readers, push it on. */
  protected stored(layer: number, chunk: number): void {
    const st = this.blobs[layer]!;
    if (st.book.has(chunk)) return;
    st.book.settle(chunk, true);
    st.incoming.delete(chunk);
    this.c.noteArrival();
    st.wake(chunk);
    if (this.c.options.push) this.startPushes(this.planner.arrived(this.c.blobName(layer), chunk, this.c.nowMs()));
  }

  private startPushes(orders: PushOrder[]): void {
    const c = this.c;
    for (const o of orders) {
      const child = c.hostById.get(o.child);
      const layer = c.layerOf(o.blob);
      if (!child?.alive()) {
        this.startPushes(this.planner.done(o, false, c.nowMs()));
        continue;
      }
      const bytes = c.chunkBytes(layer, o.chunk);
      child.pushStarting(layer, o.chunk);
      this.counters.pushed(bytes);
      c.net.send(this.nic, child.nic, bytes, {
        onDone: () => {
          child.pushArrived(layer, o.chunk, this.id);
          this.startPushes(this.planner.done(o, true, c.nowMs()));
        },
        onFail: () => {
          child.pushFailed(layer, o.chunk);
          this.startPushes(this.planner.done(o, false, c.nowMs()));
        },
      });
    }
  }
}

/** A datacenter root: a tracker per root, and the only node that fetches from the registry. */
export class SimRoot extends Node {
  readonly tracker: Tracker;

  constructor(id: string, nic: Nic, c: Cluster) {
    super(id, nic, c);
    this.tracker = new Tracker({
      fanout: c.options.fanout,
      rootFanout: c.options.rootFanout,
      random: c.options.random,
    });
  }

  protected requestS(): number {
    return this.c.options.rootRequestS;
  }

  protected fetch(layer: number, chunk: number): void {
    this.c.registry.fetch(
      this.nic,
      this.c.chunkBytes(layer, chunk),
      () => {
        this.counters.fetched('registry', this.c.chunkBytes(layer, chunk));
        this.stored(layer, chunk);
      },
      () => this.fetch(layer, chunk),
    );
  }
}

/** A host's agent: joins each blob's tree at its root and fetches along the route it is given. */
export class SimHost extends Node {
  private readonly placements: (Placement | undefined)[];
  private readonly joining: Waiter[][];
  private readonly deadline: DeadlinePolicy;
  /** When a silent peer's request may be hedged (src/p2p HedgeGate), as the agent keeps one. */
  readonly gate = new HedgeGate();
  /** When it died (seconds), if it did. */
  private diedAt: number | undefined;
  /** Whether the agent's one-time work (measured: a fresh agent's first chunks) is done. */
  private warmedUp = false;

  constructor(
    id: string,
    nic: Nic,
    c: Cluster,
    readonly root: SimRoot,
  ) {
    super(id, nic, c);
    this.placements = c.options.layerSizes.map(() => undefined);
    this.joining = c.options.layerSizes.map(() => []);
    this.deadline = c.options.deadline();
  }

  protected requestS(): number {
    return this.c.options.peerRequestS;
  }

  override serve(child: SimHost, layer: number, chunk: number, reply: Reply, abort?: Abort): void {
    // A host that died answers nothing, not even a failure: its children notice by their deadline.
    super.serve(
      child,
      layer,
      chunk,
      (ok, at) => {
        if (ok || this.alive()) reply(ok, at);
      },
      abort,
    );
  }

  /** The host dies: its transfers stop; requests to it stall until the asker's deadline. */
  die(): void {
    this.diedAt = this.c.sim.now;
    this.c.net.fail(this.nic);
  }

  /**
   * When the asker last got a heartbeat for a request this host took at `acceptedAt` (seconds):
   * one every WAIT_HEARTBEAT_MS while it lives, arriving a hop's latency later.
   */
  lastHeartbeat(acceptedAt: number | undefined): number | undefined {
    if (acceptedAt === undefined) return undefined;
    const until = Math.min(this.c.sim.now - this.c.net.options.latency, this.diedAt ?? Number.POSITIVE_INFINITY);
    if (until < acceptedAt) return undefined;
    const every = WAIT_HEARTBEAT_MS / 1000;
    return acceptedAt + Math.floor((until - acceptedAt) / every) * every + this.c.net.options.latency;
  }

  pushStarting(layer: number, chunk: number): void {
    const st = this.blobs[layer]!;
    if (!st.book.has(chunk)) st.incoming.add(chunk);
  }

  pushArrived(layer: number, chunk: number, from: string): void {
    if (!this.alive()) return;
    this.gate.heard(from, this.c.nowMs());
    const st = this.blobs[layer]!;
    if (st.book.has(chunk)) return;
    this.counters.receivedPush(this.c.chunkBytes(layer, chunk));
    this.processed(() => this.stored(layer, chunk));
  }

  /**
   * Run `then` after the agent's CPU work on one received chunk (verify, cache write, serving its
   * share to children), measured per chunk by agents.ts; where it runs is the cluster's `cpu`.
   */
  private processed(then: () => void): void {
    const o = this.c.options;
    const cost = o.hostChunkS + (this.warmedUp ? 0 : o.hostFixedS);
    this.warmedUp = true;
    o.cpu.daemon(this.id, cost, () => {
      if (this.alive()) then();
    });
  }

  pushFailed(layer: number, chunk: number): void {
    const st = this.blobs[layer]!;
    if (!st.incoming.delete(chunk) || !this.alive() || st.book.has(chunk)) return;
    // Readers were waiting on the push: pull the chunk instead.
    if (st.waiters.has(chunk) && st.book.claim(chunk)) this.fetch(layer, chunk);
  }

  /** Join the blob's tree at the root (once), then run `then`. */
  private placed(layer: number, then: Waiter): void {
    if (this.placements[layer]) {
      then();
      return;
    }
    const queue = this.joining[layer]!;
    queue.push(then);
    if (queue.length > 1) return;
    const c = this.c;
    c.net.message(this.nic, this.root.nic, () => {
      const p = this.root.tracker.join(c.blobName(layer), { id: this.id, address: `sim://${this.id}` }, c.nowMs());
      c.net.message(this.root.nic, this.nic, () => this.adopt(layer, p));
    });
  }

  /** Take a placement from the root: announce this host to its parent (for pushes), run waiters. */
  private adopt(layer: number, p: Placement): void {
    const c = this.c;
    const before = this.placements[layer]?.path[0]?.id;
    this.placements[layer] = p;
    if (before !== undefined && before !== p.path[0]?.id) this.counters.reparented();
    const parent: Node = p.path[0] ? c.hostById.get(p.path[0].id)! : this.root;
    c.net.message(this.nic, parent.nic, () => parent.planner.joined(c.blobName(layer), this.id, c.nowMs()));
    const queue = this.joining[layer]!;
    this.joining[layer] = [];
    for (const w of queue) w();
  }

  protected fetch(layer: number, chunk: number): void {
    this.placed(layer, () => this.attempt(layer, chunk, new ChunkFetch(routeOf(this.placements[layer]))));
  }

  private attempt(layer: number, chunk: number, f: ChunkFetch): void {
    const hop = f.current;
    if (!this.alive()) return;
    if (!hop) {
      // Every hop failed (cannot happen while the registry answers): start over.
      this.c.failedFetches++;
      this.c.sim.after(this.deadline.deadlineMs('root', this.c.chunkBytes(layer, chunk)) / 1000, () =>
        this.fetch(layer, chunk),
      );
      return;
    }
    const c = this.c;
    const bytes = c.chunkBytes(layer, chunk);
    const done = (ok: boolean, why: FetchFailure = 'unreachable') => {
      if (!this.alive()) return;
      const st = this.blobs[layer]!;
      if (!ok) return this.failed(layer, chunk, f, hop, why);
      if (st.book.has(chunk)) {
        // A push got here first; the request was wasted but harmless.
        st.book.settle(chunk, true);
        return;
      }
      this.counters.fetched(hop.kind === 'peer' ? 'peer' : hop.kind, bytes);
      this.processed(() => this.stored(layer, chunk));
    };
    if (hop.kind === 'registry') {
      c.registry.fetch(
        this.nic,
        bytes,
        () => done(true),
        () => done(false),
      );
      return;
    }
    const server: ChunkServer = hop.kind === 'root' ? this.root : c.hostById.get(hop.id)!;
    // The first of the answer and the deadline wins; a late answer is dropped (the agent aborted it).
    const sent = c.sim.now;
    let settled = false;
    // A hedge in flight (see below); the gate is told how each race ended.
    let hedging = false;
    const asked = new Abort();
    const hedged = new Abort();
    // The race is over: abort the loser; the gate learns whether the peer proved silent.
    const endHedge = (hedgeWon: boolean, peerSilent: boolean) => {
      if (!hedging || hop.kind !== 'peer') return;
      hedging = false;
      (hedgeWon ? asked : hedged).abort();
      this.gate.settled(hop.id, peerSilent);
    };
    const timer = c.sim.after(this.deadline.deadlineMs(hop.kind, bytes) / 1000, () => {
      if (settled) return;
      settled = true;
      endHedge(false, true);
      done(false, 'timeout');
    });
    const reply: Reply = (ok, firstByteAt) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      endHedge(false, !ok);
      if (ok && firstByteAt !== undefined) {
        this.deadline.observe(bytes, (firstByteAt - sent) * 1000, (c.sim.now - sent) * 1000);
      }
      if (ok && hop.kind === 'peer') this.gate.heard(hop.id, c.nowMs());
      done(ok);
    };
    c.net.message(this.nic, server.nic, () => server.serve(this, layer, chunk, reply, asked));
    const up = f.hedge;
    if (hop.kind !== 'peer' || !up || up.kind === 'registry') return;
    // As the agent: a request to a peer silent for the hedge delay (src/p2p HedgeGate: nothing
    // heard from it at all, caps, back-off, the root's budget) is asked of the next hop up too;
    // the first good answer wins, and a hedge that won reports the peer slow (a new parent).
    const peer = hop.id;
    const sentMs = c.nowMs();
    const check = () => {
      if (settled || !this.alive()) return;
      // Bytes still arriving from the peer (any request, a push) are progress: it is alive; so
      // are the heartbeats a live peer sends while it waits for the chunk itself (the agent's
      // serveChild: WAIT_HEARTBEAT_MS); a dead one stopped both when it died.
      if (c.net.flowing(server.nic, this.nic)) this.gate.heard(peer, c.nowMs());
      const beat = (server as SimHost).lastHeartbeat(asked.acceptedAt);
      if (beat !== undefined) this.gate.heard(peer, beat * 1000);
      const d = this.gate.decide(peer, up.kind, sentMs, c.nowMs(), this.deadline.hedgeMs(bytes));
      if (!d.hedge) {
        if (d.recheckInMs !== undefined) c.sim.after(d.recheckInMs / 1000, check);
        return;
      }
      hedging = true;
      this.counters.hedged();
      const upper: ChunkServer = up.kind === 'root' ? this.root : c.hostById.get(up.id)!;
      c.net.message(this.nic, upper.nic, () =>
        upper.serve(
          this,
          layer,
          chunk,
          (ok) => {
            if (settled || !hedging || !this.alive()) return;
            if (!ok) return endHedge(false, false);
            settled = true;
            timer.cancel();
            endHedge(true, true);
            if (up.kind === 'peer') this.gate.heard(up.id, c.nowMs());
            this.reportSlow(layer, peer);
            this.counters.fetched(up.kind === 'peer' ? 'peer' : 'root', bytes);
            this.processed(() => this.stored(layer, chunk));
          },
          hedged,
        ),
      );
    };
    check();
  }

  private reportSlow(layer: number, peer: string): void {
    const c = this.c;
    c.net.message(this.nic, this.root.nic, () => {
      const p = this.root.tracker.report(c.blobName(layer), this.id, peer, 'slow', c.nowMs());
      c.net.message(this.root.nic, this.nic, () => this.adopt(layer, p));
    });
  }

  private failed(layer: number, chunk: number, f: ChunkFetch, hop: Hop, why: FetchFailure): void {
    const c = this.c;
    this.counters.failed(hop.kind === 'peer' ? 'peer' : hop.kind);
    const verdict = f.fail(why);
    if (verdict.registryFallback) this.counters.fallback();
    if (verdict.report) {
      const { peer, problem } = verdict.report;
      c.net.message(this.nic, this.root.nic, () => {
        const p = this.root.tracker.report(c.blobName(layer), this.id, peer, problem, c.nowMs());
        c.net.message(this.root.nic, this.nic, () => this.adopt(layer, p));
      });
    }
    this.attempt(layer, chunk, f);
  }
}

/** The registry, the roots and the hosts of one run, and the bookkeeping they share. */
export class Cluster {
  readonly hostById = new Map<string, SimHost>();
  readonly hosts: SimHost[] = [];
  readonly roots: SimRoot[] = [];
  registry!: SimRegistry;
  /** Chunk arrivals at hosts and roots, in time order (for choosing "mid-transfer"). */
  readonly arrivals: number[] = [];
  failedFetches = 0;
  private readonly names: string[];

  constructor(
    readonly sim: Simulation,
    readonly net: Network,
    readonly options: ClusterOptions,
  ) {
    this.names = options.layerSizes.map((_, i) => `layer${i}`);
  }

  blobName(layer: number): string {
    return this.names[layer]!;
  }

  layerOf(blob: string): number {
    return this.names.indexOf(blob);
  }

  chunkBytes(layer: number, chunk: number): number {
    const size = this.options.layerSizes[layer]!;
    return Math.min(this.options.chunkSize, size - chunk * this.options.chunkSize);
  }

  nowMs(): number {
    return this.sim.now * 1000;
  }

  noteArrival(): void {
    this.arrivals.push(this.sim.now);
  }

  addRegistry(nic: Nic): SimRegistry {
    this.registry = new SimRegistry(nic, this.net, this.sim, this.options.registryRequestS);
    return this.registry;
  }

  addRoot(id: string, nic: Nic): SimRoot {
    const r = new SimRoot(id, nic, this);
    this.roots.push(r);
    return r;
  }

  addHost(id: string, nic: Nic, root: SimRoot): SimHost {
    const h = new SimHost(id, nic, this, root);
    this.hosts.push(h);
    this.hostById.set(id, h);
    return h;
  }
}
