import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DadiError } from '../../errors.js';
import { codecFor } from './codec.js';

describe.each(['lz4', 'zstd'] as const)('%s block codec', (algo) => {
  const codec = codecFor(algo);

  it('round-trips and decodes only into a large enough buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 9000 }), fc.boolean(), (data, runs) => {
        const src = runs ? data.map((b, i) => (i % 97 < 60 ? 0 : b)) : data;
        const dst = new Uint8Array(codec.bound(src.length));
        const n = codec.compress(src, dst);
        const out = new Uint8Array(src.length);
        expect(codec.decompress(dst.subarray(0, n), out)).toBe(src.length);
        expect(out).toEqual(src);
        if (src.length > 1) expect(codec.decompress(dst.subarray(0, n), new Uint8Array(src.length - 1))).toBe(-1);
      }),
      { numRuns: 60 },
    );
  });

  it('returns -1 on garbage and never writes past the destination', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (garbage) => {
        const big = new Uint8Array(4096 + 16).fill(0xaa);
        const n = codec.decompress(garbage, big.subarray(0, 4096));
        expect(n === -1 || (n > 0 && n <= 4096)).toBe(true);
        expect(big.subarray(4096).every((b) => b === 0xaa)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('has the header algo code', () => {
    expect(codec.code).toBe(algo === 'lz4' ? 1 : 2);
    expect(codecFor(codec.code)).toBe(codec);
  });
});

describe('codecFor', () => {
  it('refuses MINI_LZO and unknown codes', () => {
    expect(() => codecFor(0)).toThrow(DadiError);
    expect(() => codecFor(7)).toThrow(/unsupported compression algorithm 7/);
  });
});
