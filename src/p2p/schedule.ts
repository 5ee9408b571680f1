// Chunk scheduling on an agent: for one chunk, which source to ask next and what a failure means.
// Pure logic (no I/O, no clock); the agent and the scale simulator both drive it.
//
// The route of a chunk is the host's placement read upwards: its parent first, then each further
// ancestor (a parent that fails is skipped: "walk up"), then the root, and the registry last. A
// parent that does not hold the chunk fetches it from its own parent, so normally only the first
// hop is asked and the root fetches from the registry once for the whole tree. A peer that timed
// out sends the fetch straight to the root: a parent that is alive but waits on a dead ancestor
// times out its children, and walking up would then ask that dead ancestor and wait a second
// deadline (bench/scale, 5% of 1,000 hosts dying: all started 4.54 → 3.00 s). Before that, a
// request to a peer gone silent is hedged to the next hop up (`hedge`; when: p2p/hedge.ts
// HedgeGate): the first good answer wins, so a dead parent rarely reaches its deadline at all
// (all started 2.97 → 1.07 s, fault-free 0.93 s). The registry is
// used only when the root itself failed (down, or wrong bytes): `registryFallback` is then set,
// and the caller must log and count it. A root that denies access (401/403) ends the fetch: the
// registry would say the same, and a host without access gets nothing. A peer that refuses
// ('refused') is skipped without blame.
//
//   const f = new ChunkFetch(routeOf(placement));
//   for (let hop = f.current; hop; ) {
//     try { bytes = await get(hop); if (verify(bytes)) break; hop = f.fail('corrupt').next; }
//     catch { hop = f.fail('unreachable').next; }   // each verdict says whom to report to the root
//   }                                                // (the agent also hedges to f.hedge: agent.ts)

import type { HostId, HostRef, PeerProblem, Placement } from './tracker.js';

export type Hop = { kind: 'peer'; id: HostId; address: string } | { kind: 'root' } | { kind: 'registry' };

/** Why a request to a hop failed. */
export type FetchFailure =
  | 'unreachable' // connection refused/reset, DNS, the host is down
  | 'timeout' // no answer in time, or too slow
  | 'http' // an error status other than access denied
  | 'corrupt' // bytes arrived but failed verification (or had the wrong length)
  | 'denied' // 401/403 from the root: the requester has no access
  | 'refused'; // a peer would not serve us without being at fault (e.g. it does not know our grant's key yet)

export interface FailureVerdict {
  /** What the root should hear about the failed peer (agents report it; the tracker re-parents). */
  report?: { peer: HostId; problem: PeerProblem };
  /** The hop to ask now; undefined: give up (the read fails). */
  next: Hop | undefined;
  /** `next` is the registry because the root could not be used: log it and count it. */
  registryFallback: boolean;
}

/** The hops to ask for a chunk, nearest first: ancestors from the placement, the root, the registry. */
export function routeOf(placement: Pick<Placement, 'path'> | undefined): Hop[] {
  const peers: Hop[] = (placement?.path ?? []).map((h: HostRef) => ({ kind: 'peer', id: h.id, address: h.address }));
  return [...peers, { kind: 'root' }, { kind: 'registry' }];
}

const PROBLEM: Record<Exclude<FetchFailure, 'denied' | 'refused'>, PeerProblem | undefined> = {
  unreachable: 'gone',
  timeout: 'slow',
  http: 'gone',
  corrupt: 'corrupt',
};

/** The attempts for one chunk along a route; each hop is asked at most once. */
export class ChunkFetch {
  private i = 0;
  private readonly route: readonly Hop[];
  /** Hops that failed, in order, with why: for the error message when all of them do. */
  readonly failures: { hop: Hop; why: FetchFailure }[] = [];

  constructor(route: readonly Hop[]) {
    this.route = route;
  }

  /** The hop to ask now; undefined once every hop failed or access was denied. */
  get current(): Hop | undefined {
    return this.route[this.i];
  }

  /** The hop after the current peer (its parent, or the root): where to hedge a slow request. */
  get hedge(): Hop | undefined {
    return this.route[this.i]?.kind === 'peer' ? this.route[this.i + 1] : undefined;
  }

  /** The current hop failed: what to report and where to go next. */
  fail(why: FetchFailure): FailureVerdict {
    const hop = this.route[this.i];
    if (!hop) return { next: undefined, registryFallback: false };
    this.failures.push({ hop, why });
    if (why === 'denied') {
      this.i = this.route.length;
      return { next: undefined, registryFallback: false };
    }
    this.i++;
    // After a timeout the ancestors above are suspect too (see the top): go to the root.
    if (hop.kind === 'peer' && why === 'timeout') while (this.route[this.i]?.kind === 'peer') this.i++;
    const next = this.route[this.i];
    const problem = why === 'refused' ? undefined : PROBLEM[why];
    const report = hop.kind === 'peer' && problem ? { peer: hop.id, problem } : undefined;
    return { ...(report ? { report } : {}), next, registryFallback: hop.kind === 'root' && next?.kind === 'registry' };
  }
}

/**
 * Concurrent requests for one chunk share one fetch: `claim` says whether the caller should fetch
 * (true) or wait for the fetch already running (false); `settle` ends it. Also remembers chunks held.
 */
export class ChunkBook {
  private readonly held = new Set<number>();
  private readonly inFlight = new Set<number>();

  has(chunk: number): boolean {
    return this.held.has(chunk);
  }

  /** Record that `chunk` is stored (fetched or pushed, and verified). */
  store(chunk: number): void {
    this.held.add(chunk);
  }

  /** Forget a chunk (evicted from the cache). */
  drop(chunk: number): void {
    this.held.delete(chunk);
  }

  /** True when the caller should fetch `chunk`; false when it is held or another fetch runs. */
  claim(chunk: number): boolean {
    if (this.held.has(chunk) || this.inFlight.has(chunk)) return false;
    this.inFlight.add(chunk);
    return true;
  }

  settle(chunk: number, stored: boolean): void {
    this.inFlight.delete(chunk);
    if (stored) this.held.add(chunk);
  }

  /** Chunks held, counted. */
  get count(): number {
    return this.held.size;
  }
}
