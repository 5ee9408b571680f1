import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32cRaw } from './crc32c.js';

const digits = new TextEncoder().encode('123456789');

describe('crc32cRaw', () => {
  it('matches the spec test vectors (§0)', () => {
    expect(crc32cRaw(digits)).toBe(0x58e3fa20);
    expect(crc32cRaw(digits, 100007)).toBe(0x3c9bd4e0);
    expect(crc32cRaw(new Uint8Array(4096))).toBe(0);
    expect(crc32cRaw(new Uint8Array(0), 1234)).toBe(1234);
  });

  it('chains over split input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), fc.nat(), (data, cut, seed) => {
        const k = Math.min(cut, data.length);
        const whole = crc32cRaw(data, seed);
        expect(crc32cRaw(data.subarray(k), crc32cRaw(data.subarray(0, k), seed))).toBe(whole);
      }),
    );
  });
});
