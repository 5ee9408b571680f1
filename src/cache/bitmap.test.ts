import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allSet, clearRange, clearRuns, countSet, setRange } from './bitmap.js';

describe('page bitmap', () => {
  it('matches a boolean-array model', () => {
    const op = fc.record({ set: fc.boolean(), a: fc.nat(200), len: fc.nat(80) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.nat(200), fc.nat(60), (ops, q, qlen) => {
        const pages = 257;
        const bm = new Uint8Array(Math.ceil(pages / 8));
        const model = new Array<boolean>(pages).fill(false);
        for (const { set, a, len } of ops) {
          const b = Math.min(pages, a + len);
          (set ? setRange : clearRange)(bm, a, b);
          for (let p = a; p < b; p++) model[p] = set;
        }
        const qe = Math.min(pages, q + qlen);
        expect(allSet(bm, q, qe)).toBe(model.slice(q, qe).every(Boolean));
        expect(countSet(bm, pages)).toBe(model.filter(Boolean).length);
        const runs: Array<[number, number]> = [];
        for (let p = q; p < qe; p++) {
          if (model[p]) continue;
          const last = runs[runs.length - 1];
          if (last && last[1] === p) last[1] = p + 1;
          else runs.push([p, p + 1]);
        }
        expect(clearRuns(bm, q, qe)).toEqual(runs);
      }),
    );
  });
});
