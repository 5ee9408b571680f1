import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_SIZE, chunkCount, chunkRange, chunksCovering } from './chunks.js';
import { ChunkBook, ChunkFetch, type FetchFailure, type Hop, routeOf } from './schedule.js';

const path = [
  { id: 'p', address: 'http://p' },
  { id: 'g', address: 'http://g' },
];

describe('chunk geometry', () => {
  it('covers exactly the bytes of a read with aligned chunks', () => {
    fc.assert(
      fc.property(fc.nat(50 * CHUNK_SIZE), fc.nat(60 * CHUNK_SIZE), fc.nat(8 * CHUNK_SIZE), (size, off, len) => {
        const { first, end } = chunksCovering(size, off, len);
        const want = Math.min(size, off + len);
        if (want <= off) {
          expect(end - first).toBe(0);
          return;
        }
        const lo = chunkRange(size, first);
        const hi = chunkRange(size, end - 1);
        expect(lo.offset).toBeLessThanOrEqual(off);
        expect(lo.offset % CHUNK_SIZE).toBe(0);
        expect(lo.offset + lo.length).toBeGreaterThan(off);
        expect(hi.offset + hi.length).toBeGreaterThanOrEqual(want);
        expect(hi.offset).toBeLessThan(want);
      }),
    );
  });

  it('sums chunk lengths to the blob size and names bad input', () => {
    fc.assert(
      fc.property(fc.nat(20 * CHUNK_SIZE), (size) => {
        let total = 0;
        for (let i = 0; i < chunkCount(size); i++) total += chunkRange(size, i).length;
        expect(total).toBe(size);
      }),
    );
    expect(() => chunkRange(10, 1)).toThrow(/chunk 1 is outside a blob of 1 chunks/);
    expect(() => chunkCount(-1)).toThrow(/blob size -1/);
  });
});

describe('ChunkFetch', () => {
  it('asks the parent, walks up, then the root; the registry only after the root failed', () => {
    const f = new ChunkFetch(routeOf({ path }));
    expect(f.current).toEqual({ kind: 'peer', id: 'p', address: 'http://p' });
    expect(f.fail('unreachable')).toEqual({
      report: { peer: 'p', problem: 'gone' },
      next: { kind: 'peer', id: 'g', address: 'http://g' },
      registryFallback: false,
    });
    expect(f.fail('corrupt')).toEqual({
      report: { peer: 'g', problem: 'corrupt' },
      next: { kind: 'root' },
      registryFallback: false,
    });
    expect(f.fail('timeout')).toEqual({ next: { kind: 'registry' }, registryFallback: true });
    expect(f.fail('http')).toEqual({ next: undefined, registryFallback: false });
    expect(f.current).toBeUndefined();
    expect(f.failures.map((x) => x.why)).toEqual(['unreachable', 'corrupt', 'timeout', 'http']);
  });

  it('goes straight to the root after a peer timed out (the ancestors above it are suspect)', () => {
    const f = new ChunkFetch(routeOf({ path }));
    expect(f.fail('timeout')).toEqual({
      report: { peer: 'p', problem: 'slow' },
      next: { kind: 'root' },
      registryFallback: false,
    });
    expect(f.failures.map((x) => x.hop)).toEqual([{ kind: 'peer', id: 'p', address: 'http://p' }]);
  });

  it('hedges a request to a peer to the next hop up: an ancestor, else the root; never the root itself', () => {
    const f = new ChunkFetch(routeOf({ path }));
    expect(f.hedge).toEqual({ kind: 'peer', id: 'g', address: 'http://g' });
    f.fail('unreachable');
    expect(f.hedge).toEqual({ kind: 'root' });
    f.fail('unreachable');
    expect(f.current).toEqual({ kind: 'root' });
    expect(f.hedge).toBeUndefined();
  });

  it('gives up when access is denied, without trying the registry', () => {
    const f = new ChunkFetch(routeOf(undefined));
    expect(f.current).toEqual({ kind: 'root' });
    expect(f.fail('denied')).toEqual({ next: undefined, registryFallback: false });
    expect(f.current).toBeUndefined();
  });

  it('tries each hop at most once, in route order, and reports only peers', () => {
    const why = fc.constantFrom<FetchFailure>('unreachable', 'timeout', 'http', 'corrupt', 'denied', 'refused');
    fc.assert(
      fc.property(fc.nat(6), fc.array(why, { maxLength: 12 }), (depth, failures) => {
        const route = routeOf({ path: Array.from({ length: depth }, (_, i) => ({ id: `a${i}`, address: `x${i}` })) });
        const f = new ChunkFetch(route);
        const asked: Hop[] = [];
        for (const w of failures) {
          const hop = f.current;
          if (!hop) break;
          asked.push(hop);
          const v = f.fail(w);
          expect(v.report !== undefined).toBe(hop.kind === 'peer' && w !== 'denied' && w !== 'refused');
          expect(v.registryFallback).toBe(hop.kind === 'root' && w !== 'denied');
          if (w === 'denied') expect(v.next).toBeUndefined();
        }
        // In route order, each hop at most once; only a peer's timeout skips hops (the peers above it).
        let at = 0;
        for (let k = 0; k < asked.length; k++) {
          const i = route.indexOf(asked[k]!, at);
          expect(i).toBeGreaterThanOrEqual(at);
          const skipped = route.slice(at, i);
          if (skipped.length > 0) {
            expect(failures[k - 1]).toBe('timeout');
            expect(asked[k - 1]!.kind).toBe('peer');
            expect(skipped.every((h) => h.kind === 'peer')).toBe(true);
            expect(asked[k]!.kind).toBe('root');
          }
          at = i + 1;
        }
      }),
    );
  });
});

describe('ChunkBook', () => {
  it('lets one caller fetch a chunk while others wait, and remembers what is held', () => {
    const b = new ChunkBook();
    expect(b.claim(3)).toBe(true);
    expect(b.claim(3)).toBe(false);
    b.settle(3, false);
    expect(b.has(3)).toBe(false);
    expect(b.claim(3)).toBe(true);
    b.settle(3, true);
    expect(b.has(3)).toBe(true);
    expect(b.claim(3)).toBe(false);
    b.drop(3);
    expect(b.count).toBe(0);
  });
});
