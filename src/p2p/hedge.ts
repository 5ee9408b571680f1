// Whether a chunk request to a silent peer may be hedged now (sent to the next hop up as well),
// so hedging rescues the children of a dead parent without feeding on itself when every parent is
// alive but busy. The hedge delay itself is TransferDeadline.hedgeMs (deadline.ts); this gate adds:
//
// - silence of the *peer*, not of the request: a request is hedged only when nothing at all came
//   from that peer (an answer to any request, a pushed chunk) for the hedge delay. A parent that
//   is still fetching the chunk from its own parent, or is busy serving its other children, keeps
//   delivering something; a dead one delivers nothing. Without this, a synchronized start at
//   fan-out 8 hedged 16k requests and took 4.7 s instead of 1.3 s (bench/scale);
// - at most `maxInFlight` speculative hedges per host at once; a peer silent for twice the delay,
//   or one a hedge already won against since it was last heard from, is proven silent: the rest
//   of the requests to it are redirections, not speculation, and are not held back;
// - back-off: a hedge that lost (the peer answered first) doubles the silence needed before the
//   next one, up to `maxBackoff` times the delay; one that won halves it again;
// - a budget for hedges to the root (a bucket of `rootBurst`, one more every `rootRefillMs`): the
//   root serves the whole tree, and a storm of hedges there is what made fan-out 16 take 8 s.
//
// Pure: the caller passes the clock in (ms) and does the I/O. The agent (swarm/agent.ts) and the
// scale simulator (bench/scale/cluster.ts) keep one gate per host.
//
//   const d = gate.decide(peer, up.kind, sentMs, nowMs, deadline.hedgeMs(bytes));
//   if (d.hedge) { ...send to up...; gate.settled(peer, hedgeWon) } else if (d.recheckInMs) ...ask again then
//   gate.heard(peer, nowMs)   // any answer or push from that peer

import { DadiError } from '../errors.js';

/**
 * A peer asked for a chunk it does not hold yet tells the asker it is alive this often while it
 * fetches the chunk itself (an HTTP 102 on the request: swarm/agent.ts serveChild), so waiting on
 * its own parent never looks like death. Well below the hedge delay's 250 ms floor.
 */
export const WAIT_HEARTBEAT_MS = 100;

export interface HedgeOptions {
  /** Speculative hedges one host has in flight at once (default 2). */
  maxInFlight?: number;
  /** The largest multiple of the hedge delay the back-off reaches (default 8). */
  maxBackoff?: number;
  /** Hedges to the root a host may send at once after a quiet spell (default 4). */
  rootBurst?: number;
  /** One more hedge to the root every this many ms (default 5000). */
  rootRefillMs?: number;
  /** Peers whose last answer is remembered (default 64; the oldest is forgotten). */
  maxPeers?: number;
}

export type HedgeDecision =
  | { hedge: true }
  /** Not now; ask again after `recheckInMs` (undefined: not for this request). */
  | { hedge: false; recheckInMs: number | undefined };

export class HedgeGate {
  private readonly maxInFlight: number;
  private readonly maxBackoff: number;
  private readonly rootBurst: number;
  private readonly rootRefillMs: number;
  private readonly maxPeers: number;
  /** When each peer last delivered anything (ms), oldest first. */
  private readonly lastHeard = new Map<string, number>();
  /** Peers a hedge won against, not heard from since. */
  private readonly silent = new Set<string>();
  private inFlight = 0;
  private backoff = 1;
  private rootTokens: number;
  private rootRefilledAt: number | undefined;
  /** Decisions so far, for counters and tests. */
  readonly stats = { hedged: 0, won: 0, lost: 0, capped: 0, rootDenied: 0 };

  constructor(o: HedgeOptions = {}) {
    this.maxInFlight = o.maxInFlight ?? 2;
    this.maxBackoff = o.maxBackoff ?? 8;
    this.rootBurst = o.rootBurst ?? 4;
    this.rootRefillMs = o.rootRefillMs ?? 5000;
    this.maxPeers = o.maxPeers ?? 64;
    const ints = [this.maxInFlight, this.rootBurst, this.maxPeers].every((n) => Number.isInteger(n) && n >= 1);
    if (!(ints && this.maxBackoff >= 1 && this.rootRefillMs > 0)) {
      throw new DadiError('EINVAL', `hedge gate: bad options ${JSON.stringify(o)}`);
    }
    this.rootTokens = this.rootBurst;
  }

  /** The multiple of the hedge delay a peer must now be silent for. */
  get backoffFactor(): number {
    return this.backoff;
  }

  /** Hedges sent and not settled yet. */
  get hedgesInFlight(): number {
    return this.inFlight;
  }

  /** Something (an answer, a push) arrived from `peer` at `nowMs`. */
  heard(peer: string, nowMs: number): void {
    this.lastHeard.delete(peer);
    this.lastHeard.set(peer, nowMs);
    this.silent.delete(peer);
    if (this.lastHeard.size > this.maxPeers) this.lastHeard.delete(this.lastHeard.keys().next().value!);
  }

  /**
   * A request to `peer` sent at `sentMs` is unanswered at `nowMs`: hedge it to `up` now? `delayMs`
   * is the hedge delay (TransferDeadline.hedgeMs); undefined means no basis for one (never).
   * A yes must be followed by `settled` once the race is decided.
   */
  decide(peer: string, up: 'peer' | 'root', sentMs: number, nowMs: number, delayMs: number | undefined): HedgeDecision {
    if (delayMs === undefined) return { hedge: false, recheckInMs: undefined };
    const quietSince = Math.max(sentMs, this.lastHeard.get(peer) ?? Number.NEGATIVE_INFINITY);
    const needed = delayMs * this.backoff;
    const waited = nowMs - quietSince;
    if (waited < needed) return { hedge: false, recheckInMs: Math.max(1, Math.ceil(needed - waited)) };
    // Silent for twice the delay (several heartbeats missed) or lost to a hedge already: no
    // longer speculation but a redirection, which the in-flight cap does not hold back.
    const speculative = waited < 2 * needed && !this.silent.has(peer);
    if (this.inFlight >= this.maxInFlight && speculative) {
      this.stats.capped++;
      return { hedge: false, recheckInMs: Math.max(1, Math.ceil(delayMs / 2)) };
    }
    if (up === 'root') {
      this.refill(nowMs);
      if (this.rootTokens < 1) {
        this.stats.rootDenied++;
        return { hedge: false, recheckInMs: Math.max(1, Math.ceil((1 - this.rootTokens) * this.rootRefillMs)) };
      }
      this.rootTokens -= 1;
    }
    this.inFlight++;
    this.stats.hedged++;
    return { hedge: true };
  }

  /** The race of a hedge against `peer` is decided: `won` when the hedge's answer was used. */
  settled(peer: string, won: boolean): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (won) {
      this.stats.won++;
      this.silent.add(peer);
      if (this.silent.size > this.maxPeers) this.silent.delete(this.silent.values().next().value!);
      this.backoff = Math.max(1, this.backoff / 2);
    } else {
      this.stats.lost++;
      this.backoff = Math.min(this.maxBackoff, this.backoff * 2);
    }
  }

  private refill(nowMs: number): void {
    if (this.rootRefilledAt !== undefined && nowMs > this.rootRefilledAt) {
      this.rootTokens = Math.min(this.rootBurst, this.rootTokens + (nowMs - this.rootRefilledAt) / this.rootRefillMs);
    }
    this.rootRefilledAt = Math.max(nowMs, this.rootRefilledAt ?? nowMs);
  }
}
