import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PushOrder, PushPlanner } from './push.js';
import { seededRandom } from './random.js';

describe('PushPlanner', () => {
  it('pushes every arrived chunk once to every joined child that did not ask for it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        (window, nChildren, nChunks, seed) => {
          const random = seededRandom(seed);
          const p = new PushPlanner({ window, idleMs: 1e9 });
          const children = Array.from({ length: nChildren }, (_, i) => `c${i}`);
          for (const c of children) p.joined('b', c, 0);
          const asked = new Map(children.map((c) => [c, new Set<number>()]));
          for (let k = 0; k < nChunks; k++) {
            if (random() < 0.3) {
              const c = children[Math.floor(random() * nChildren)]!;
              asked.get(c)!.add(k);
              p.requested('b', c, k, 0);
            }
          }
          const inFlight: PushOrder[] = [];
          const delivered = new Map(children.map((c) => [c, [] as number[]]));
          const start = (orders: PushOrder[]) => {
            for (const o of orders) {
              inFlight.push(o);
              expect(inFlight.filter((x) => x.child === o.child).length).toBeLessThanOrEqual(window);
            }
          };
          // Chunks arrive in order while pushes complete in a random order: bounded by chunks × children.
          let next = 0;
          for (let step = 0; step < 4 * nChunks * nChildren + 10 && (next < nChunks || inFlight.length > 0); step++) {
            if (next < nChunks && (inFlight.length === 0 || random() < 0.5)) start(p.arrived('b', next++, 0));
            else if (inFlight.length > 0) {
              const o = inFlight.splice(Math.floor(random() * inFlight.length), 1)[0]!;
              delivered.get(o.child)!.push(o.chunk);
              start(p.done(o, true, 0));
            }
          }
          expect(inFlight).toEqual([]);
          for (const c of children) {
            const want = Array.from({ length: nChunks }, (_, k) => k).filter((k) => !asked.get(c)!.has(k));
            expect(delivered.get(c)!.sort((a, b) => a - b)).toEqual(want);
          }
        },
      ),
    );
  });

  it('stops pushing to a child that failed, left or went quiet', () => {
    const p = new PushPlanner({ window: 1, idleMs: 100 });
    p.joined('b', 'c', 0);
    const [first] = p.arrived('b', 0, 0);
    expect(first).toEqual({ blob: 'b', child: 'c', chunk: 0 });
    expect(p.arrived('b', 1, 0)).toEqual([]); // queued: window full
    expect(p.done(first!, false, 0)).toEqual([]); // failed: the queue is dropped, the child pulls
    p.joined('b', 'd', 0);
    expect(p.arrived('b', 2, 50)).toHaveLength(2);
    expect(p.arrived('b', 3, 200)).toEqual([]); // both quiet for idleMs
    expect(p.children('b')).toEqual([]);
    p.joined('b', 'e', 300);
    p.left('b', 'e');
    expect(p.arrived('b', 4, 300)).toEqual([]);
  });
});
