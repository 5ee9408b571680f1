import { describe, expect, it } from 'vitest';
import { requireOrSkip } from '../../test/require.js';
import { isPycHeader, PYC_HEADER_BYTES, pycImports } from './py-names.js';
import { compileModules, pythonTag } from './py-test-modules.js';

const tag = pythonTag();
requireOrSkip('.pyc import walk', tag ? undefined : 'python3 (3.11-3.13) is not installed');

/** A small seeded generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.skipIf(!tag)('python bytecode imports (python3 on PATH)', () => {
  it("finds a module's module-level imports, their levels and from-lists, not its functions'", async () => {
    const pycs = await compileModules({
      'pkg/__init__.py': [
        'import os, json.decoder',
        'from . import sub',
        'from .mod import thing, other',
        'from .. import up',
        'try:',
        '    import fast',
        'except ImportError:',
        '    fast = None',
        'NAMES = ("notamodule", "another")',
        'class C:',
        '    x = 1',
        'def later():',
        '    import lazy',
        '    return lazy',
        '',
      ].join('\n'),
    });
    const pyc = pycs.get(`pkg/__pycache__/__init__.${tag}.pyc`)!;
    expect(isPycHeader(pyc)).toBe(true);
    expect(pycImports(pyc)).toEqual([
      { name: 'os', level: 0, from: [] },
      { name: 'json.decoder', level: 0, from: [] },
      { name: '', level: 1, from: ['sub'] },
      { name: 'mod', level: 1, from: ['thing', 'other'] },
      { name: '', level: 2, from: ['up'] },
      { name: 'fast', level: 0, from: [] },
    ]);
  });

  it('gives what it can, never throws, on truncated, corrupted and hostile bytes', async () => {
    const pycs = await compileModules({
      'm.py': 'import a, b.c\nfrom d import e\nx = [1.5, 2j, 10**30, b"x", {1: 2}, {3}]\n',
    });
    const pyc = pycs.get(`__pycache__/m.${tag}.pyc`)!;
    expect(pycImports(pyc).map((i) => i.name)).toEqual(['a', 'b.c', 'd']);
    for (let n = 0; n < pyc.length; n++) expect(Array.isArray(pycImports(pyc.subarray(0, n)))).toBe(true);
    const rnd = random(11);
    for (let round = 0; round < 300; round++) {
      const bad = Buffer.from(pyc);
      for (let k = 0; k < 4; k++)
        bad[PYC_HEADER_BYTES + Math.floor(rnd() * (bad.length - PYC_HEADER_BYTES))] = Math.floor(rnd() * 256);
      expect(Array.isArray(pycImports(bad))).toBe(true);
    }
    // A tuple claiming 2^31 items, and a deep nest of one-item tuples: bounded, no allocation of the claim.
    const huge = Buffer.concat([
      pyc.subarray(0, PYC_HEADER_BYTES),
      Buffer.from([0x63]),
      Buffer.alloc(20),
      Buffer.from([0x28, 0xff, 0xff, 0xff, 0x7f]),
    ]);
    expect(pycImports(huge)).toEqual([]);
    const deep = Buffer.concat([
      pyc.subarray(0, PYC_HEADER_BYTES),
      Buffer.from([0x63]),
      Buffer.alloc(20),
      Buffer.alloc(100000, 0x29).map((_, i) => (i % 2 ? 1 : 0x29)),
    ]);
    expect(pycImports(deep)).toEqual([]);
    // Not a .pyc, or a version it does not know.
    expect(pycImports(Buffer.from('#!/bin/sh\necho hi\n'))).toEqual([]);
    const future = Buffer.from(pyc);
    future.writeUInt16LE(9999, 0);
    expect(pycImports(future)).toEqual([]);
  });
});

describe('pyc header', () => {
  it('knows a .pyc header from other file starts', () => {
    const h = Buffer.alloc(17);
    h.writeUInt16LE(3495, 0);
    h[2] = 0x0d;
    h[3] = 0x0a;
    h[16] = 0xe3;
    expect(isPycHeader(h)).toBe(true);
    expect(isPycHeader(h.subarray(0, 15))).toBe(false);
    h[4] = 4;
    expect(isPycHeader(h)).toBe(false);
    expect(isPycHeader(Buffer.from('\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'))).toBe(false);
  });
});
