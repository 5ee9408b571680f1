import { describe, expect, it } from 'vitest';
import { decodeMapHeader, decodeTrailer, encodeMapHeader, encodeTrailer, parseName } from './layout.js';

describe('cache layout', () => {
  const key = `sha256:${'ab'.repeat(32)}`;
  it('round-trips the map header and rejects any flipped byte', () => {
    const b = encodeMapHeader({ size: 123_456_789, nonce: 0x1122334455667788n, key });
    expect(decodeMapHeader(b)).toEqual({ size: 123_456_789, nonce: 0x1122334455667788n, key });
    for (const i of [0, 9, 16, 24, 33, 36, 40, 100, 4095]) {
      const c = Buffer.from(b);
      c[i]! ^= 1;
      expect(decodeMapHeader(c)).toBeUndefined();
    }
  });
  it('round-trips the data trailer and rejects a torn one', () => {
    const t = encodeTrailer(5000, 42n);
    expect(decodeTrailer(t)).toEqual({ size: 5000, nonce: 42n });
    expect(decodeTrailer(Buffer.alloc(32))).toBeUndefined();
    const c = Buffer.from(t);
    c[20]! ^= 4;
    expect(decodeTrailer(c)).toBeUndefined();
  });
  it('names files by key and parses them back', () => {
    expect(parseName(`${key}.data`)).toEqual({ key, kind: 'data' });
    expect(parseName(`${key}.map`)).toEqual({ key, kind: 'map' });
    expect(parseName('lost+found')).toBeUndefined();
    expect(parseName(`${key}.data.123.ab.tmp`)).toBeUndefined();
  });
});
