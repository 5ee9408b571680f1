import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HedgeGate } from './hedge.js';

describe('HedgeGate', () => {
  it('hedges only a peer silent for the delay; anything heard from it starts the silence anew', () => {
    const g = new HedgeGate();
    expect(g.decide('p', 'peer', 0, 100, 250)).toEqual({ hedge: false, recheckInMs: 150 });
    g.heard('p', 200); // a heartbeat or bytes on any request
    expect(g.decide('p', 'peer', 0, 300, 250)).toEqual({ hedge: false, recheckInMs: 150 });
    expect(g.decide('p', 'peer', 0, 450, 250)).toEqual({ hedge: true });
    expect(g.hedgesInFlight).toBe(1);
    // Another peer's answers say nothing about this one; no delay (no basis) is never.
    expect(g.decide('q', 'peer', 0, 250, undefined)).toEqual({ hedge: false, recheckInMs: undefined });
  });

  it('holds speculative hedges to the in-flight cap, not those to a peer proven silent', () => {
    const g = new HedgeGate({ maxInFlight: 2 });
    expect(g.decide('p', 'peer', 0, 250, 250).hedge).toBe(true);
    expect(g.decide('p', 'peer', 0, 250, 250).hedge).toBe(true);
    expect(g.decide('p', 'peer', 0, 250, 250)).toEqual({ hedge: false, recheckInMs: 125 });
    expect(g.stats.capped).toBe(1);
    // Silent for twice the delay: a redirection, not held back.
    expect(g.decide('p', 'peer', 0, 500, 250).hedge).toBe(true);
    expect(g.hedgesInFlight).toBe(3);
    // A hedge won against q: q's other requests go up at once, until q is heard from again.
    g.settled('q', true);
    expect(g.decide('q', 'peer', 0, 260, 250).hedge).toBe(true);
    g.heard('q', 300);
    expect(g.decide('q', 'peer', 0, 560, 250)).toEqual({ hedge: false, recheckInMs: 125 });
    g.settled('p', false);
    g.settled('p', false);
    expect(g.hedgesInFlight).toBe(1);
  });

  it('backs off when hedges lose, up to maxBackoff, and halves it when one wins', () => {
    const g = new HedgeGate({ maxBackoff: 4 });
    for (let i = 0; i < 5; i++) {
      expect(g.decide('p', 'peer', 0, 10_000, 250).hedge).toBe(true);
      g.settled('p', false);
    }
    expect(g.backoffFactor).toBe(4);
    // The peer must now be silent for 4 × 250 ms.
    expect(g.decide('p', 'peer', 0, 999, 250)).toEqual({ hedge: false, recheckInMs: 1 });
    expect(g.decide('p', 'peer', 0, 1000, 250).hedge).toBe(true);
    g.settled('p', true);
    expect(g.backoffFactor).toBe(2);
    expect(g.stats).toMatchObject({ hedged: 6, won: 1, lost: 5 });
  });

  it('keeps hedges to the root within its budget: a burst, then one per refill period', () => {
    const g = new HedgeGate({ rootBurst: 2, rootRefillMs: 1000, maxInFlight: 10 });
    expect(g.decide('p', 'root', 0, 300, 250).hedge).toBe(true);
    expect(g.decide('p', 'root', 0, 300, 250).hedge).toBe(true);
    expect(g.decide('p', 'root', 0, 300, 250)).toEqual({ hedge: false, recheckInMs: 1000 });
    expect(g.stats.rootDenied).toBe(1);
    // Hedges to a peer are not charged to the root's budget.
    expect(g.decide('p', 'peer', 0, 300, 250).hedge).toBe(true);
    expect(g.decide('p', 'root', 0, 800, 250)).toEqual({ hedge: false, recheckInMs: 500 });
    expect(g.decide('p', 'root', 0, 1300, 250).hedge).toBe(true);
  });

  it('rejects nonsense options', () => {
    expect(() => new HedgeGate({ maxInFlight: 0 })).toThrow(/bad options/);
    expect(() => new HedgeGate({ maxBackoff: 0.5 })).toThrow(/bad options/);
    expect(() => new HedgeGate({ rootRefillMs: 0 })).toThrow(/bad options/);
  });

  it('keeps its books and the root budget over any sequence of events (seeded)', () => {
    type Ev = [kind: number, peer: number, up: boolean, dtMs: number, won: boolean];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(3), fc.nat(4), fc.boolean(), fc.nat(400), fc.boolean()), { maxLength: 200 }),
        (events: Ev[]) => {
          const g = new HedgeGate({ maxInFlight: 2, maxBackoff: 8, rootBurst: 3, rootRefillMs: 1000, maxPeers: 3 });
          let now = 0;
          let rootHedges = 0;
          const open: string[] = [];
          for (const [kind, p, toRoot, dt, won] of events) {
            now += dt;
            const peer = `p${p}`;
            if (kind === 0) g.heard(peer, now);
            else if (kind === 1 && open.length > 0) g.settled(open.shift()!, won);
            else {
              const d = g.decide(peer, toRoot ? 'root' : 'peer', now - dt, now, 250);
              if (d.hedge) {
                open.push(peer);
                if (toRoot) rootHedges++;
              } else if (d.recheckInMs !== undefined && !(d.recheckInMs >= 1)) return false;
            }
            if (g.hedgesInFlight !== open.length) return false;
            if (!(g.backoffFactor >= 1 && g.backoffFactor <= 8)) return false;
            if (rootHedges > 3 + now / 1000) return false;
          }
          return true;
        },
      ),
      { seed: 14, numRuns: 300 },
    );
  });
});
