import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seededRandom } from './random.js';
import { type HostId, type Placement, Tracker } from './tracker.js';

const host = (i: number) => ({ id: `h${i}`, address: `http://10.0.0.${i}:19145` });

/** Checks every structural promise of the tracker for the given blob and hosts. */
function checkTree(t: Tracker, blob: string, ids: HostId[], fanout: number): void {
  const joined = ids.filter((id) => t.placement(blob, id));
  expect(t.size(blob)).toBe(joined.length);
  const childCount = new Map<HostId, number>();
  for (const id of joined) {
    const p = t.placement(blob, id)!;
    expect(p.path.map((h) => h.id)).not.toContain(id);
    expect(new Set(p.path.map((h) => h.id)).size).toBe(p.path.length); // no cycle
    for (const a of p.path) expect(t.placement(blob, a.id)).toBeDefined();
    const parent = p.path[0]?.id;
    if (parent) {
      childCount.set(parent, (childCount.get(parent) ?? 0) + 1);
      expect(t.distrusted(parent)).toBe(false);
    }
  }
  for (const id of joined) {
    const kids = t.children(blob, id).map((h) => h.id);
    expect(kids.length).toBe(childCount.get(id) ?? 0);
    expect(kids.length).toBeLessThanOrEqual(fanout);
    for (const k of kids) expect(t.placement(blob, k)!.path[0]!.id).toBe(id);
  }
  const underRoot = t.children(blob, null).map((h) => h.id);
  expect(underRoot.sort()).toEqual(joined.filter((id) => t.placement(blob, id)!.path.length === 0).sort());
}

/** The smallest depth D with k + k² + … + k^D ≥ n: the depth of a full k-ary tree of n hosts. */
function fullDepth(n: number, k: number): number {
  let d = 0;
  for (let cap = 0, level = 1; cap < n; d++) {
    level *= k;
    cap += level;
  }
  return d;
}

describe('Tracker', () => {
  it('places joining hosts breadth-first: depth stays that of a full k-ary tree', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 6 }), fc.integer(), (n, k, seed) => {
        const t = new Tracker({ fanout: k, random: seededRandom(seed) });
        for (let i = 0; i < n; i++) t.join('b', host(i), 0);
        const depths = Array.from({ length: n }, (_, i) => t.depth('b', `h${i}`));
        expect(Math.max(...depths)).toBe(fullDepth(n, k));
        checkTree(
          t,
          'b',
          Array.from({ length: n }, (_, i) => `h${i}`),
          k,
        );
      }),
      { numRuns: 60 },
    );
  });

  it('keeps a valid tree under any mix of joins, leaves, reports and expiry', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('join' as const), h: fc.nat(39), blob: fc.nat(2) }),
      fc.record({ kind: fc.constant('leave' as const), h: fc.nat(39), blob: fc.nat(2) }),
      fc.record({
        kind: fc.constant('report' as const),
        h: fc.nat(39),
        blob: fc.nat(2),
        problem: fc.constantFrom('slow' as const, 'gone' as const, 'corrupt' as const),
        up: fc.nat(3),
      }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.nat(30_000) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 250 }), fc.integer({ min: 1, max: 4 }), fc.integer(), (ops, k, seed) => {
        const t = new Tracker({ fanout: k, idleMs: 60_000, random: seededRandom(seed) });
        const ids = Array.from({ length: 40 }, (_, i) => `h${i}`);
        let now = 0;
        for (const o of ops) {
          if (o.kind === 'tick') {
            now += o.ms;
            t.expire(now);
            continue;
          }
          const blob = `b${o.blob}`;
          if (o.kind === 'join') t.join(blob, host(o.h), now);
          else if (o.kind === 'leave') t.leave(blob, `h${o.h}`);
          else {
            const p = t.placement(blob, `h${o.h}`);
            const peer = p?.path[Math.min(o.up, p.path.length - 1)];
            if (!p || !peer) continue;
            const after = t.report(blob, p.host, peer.id, o.problem, now);
            // Whatever the problem, the reported peer is no longer on the reporter's way up.
            expect(after.path.map((h) => h.id)).not.toContain(peer.id);
          }
        }
        let load = 0;
        for (const b of ['b0', 'b1', 'b2']) {
          checkTree(t, b, ids, k);
          for (const id of ids) load += t.children(b, id).length;
        }
        expect(ids.reduce((s, id) => s + t.load(id), 0)).toBe(load);
      }),
      { numRuns: 150 },
    );
  });

  it('re-places the children of a gone host and never picks a blamed one again', () => {
    const t = new Tracker({ fanout: 2, random: seededRandom(7) });
    for (let i = 0; i < 10; i++) t.join('b', host(i), 0);
    const deep = Array.from({ length: 10 }, (_, i) => t.placement('b', `h${i}`)!).find((p) => p.path.length >= 2)!;
    const parent = deep.path[0]!.id;
    const orphans = t.children('b', parent).map((h) => h.id);
    t.report('b', deep.host, parent, 'gone', 1);
    expect(t.placement('b', parent)).toBeUndefined();
    for (const o of orphans) expect(t.placement('b', o)!.path.map((h) => h.id)).not.toContain(parent);

    const bad = t.placement('b', deep.host)!.path[0]?.id ?? t.children('b', null)[0]!.id;
    const reporter = t.children('b', bad)[0]?.id ?? deep.host;
    t.report('b', reporter, bad, 'corrupt', 2);
    expect(t.distrusted(bad)).toBe(true);
    expect(t.children('b', bad)).toEqual([]);
    for (let i = 10; i < 40; i++) t.join('b', host(i), 3);
    expect(t.children('b', bad)).toEqual([]);
  });

  it('a slow report moves the reporter away from that peer for good', () => {
    const t = new Tracker({ fanout: 1, rootFanout: 1, random: seededRandom(3) });
    for (let i = 0; i < 4; i++) t.join('b', host(i), 0); // a chain h0 ← h1 ← h2 ← h3
    expect(t.placement('b', 'h3')!.path.map((h) => h.id)).toEqual(['h2', 'h1', 'h0']);
    const p = t.report('b', 'h3', 'h2', 'slow', 1);
    expect(p.path.map((h) => h.id)).not.toContain('h2');
    t.join('b', host(3), 2);
    expect(t.placement('b', 'h3')!.path.map((h) => h.id)).not.toContain('h2');
  });

  it('prefers parents with spare upload and hosts holding the whole blob', () => {
    const t = new Tracker({ fanout: 2, rootFanout: 2, random: seededRandom(5) });
    t.join('b', host(0), 0);
    t.join('b', { ...host(1), upload: 4 }, 0);
    // h0 already parents two children in another blob: h1 has more spare upload.
    t.join('other', host(0), 0);
    for (let i = 10; i < 14; i++) t.join('other', host(i), 0);
    expect(t.load('h0')).toBe(2);
    expect(t.placement('b', 'h2')).toBeUndefined();
    expect(t.join('b', host(2), 0).path[0]!.id).toBe('h1');
    t.holds('b', 'h0', 1);
    expect(t.join('b', host(3), 1).path[0]!.id).toBe('h0');
  });

  it('forgets hosts not seen for idleMs and keeps those that refresh', () => {
    const t = new Tracker({ fanout: 2, idleMs: 1000, random: seededRandom(1) });
    t.join('b', host(1), 0);
    t.join('b', host(2), 0);
    t.join('b', host(2), 900);
    expect(t.expire(1000)).toBe(1);
    expect(t.placement('b', 'h1')).toBeUndefined();
    expect(t.placement('b', 'h2')).toBeDefined();
    expect(t.expire(1900)).toBe(1);
    expect(t.blobs()).toEqual([]);
  });

  it('is deterministic for a seed', () => {
    const run = (seed: number): Placement[] => {
      const t = new Tracker({ fanout: 3, random: seededRandom(seed) });
      const out: Placement[] = [];
      for (let i = 0; i < 50; i++) out.push(t.join('b', host(i), i));
      t.report('b', 'h40', t.placement('b', 'h40')!.path[0]!.id, 'gone', 60);
      return Array.from({ length: 50 }, (_, i) => t.placement('b', `h${i}`)).filter((p): p is Placement => !!p);
    };
    expect(run(9)).toEqual(run(9));
  });

  it('rejects a bad fan-out and bad upload capacity', () => {
    expect(() => new Tracker({ fanout: 0, random: seededRandom(1) })).toThrow(/fan-out/);
    const t = new Tracker({ fanout: 2, random: seededRandom(1) });
    expect(() => t.join('b', { ...host(1), upload: -1 }, 0)).toThrow(/h1: upload capacity/);
    expect(() => t.report('b', 'h9', 'h1', 'slow', 0)).toThrow(/h9 has not joined blob b/);
  });
});
