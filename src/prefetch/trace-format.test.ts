import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { decodeTrace, encodeTrace, isTrace, TRACE_MAGIC, type TraceRecord } from './trace-format.js';

/** CRC32C without pre/post inversion, bit by bit: an independent model of the checksum. */
function crc32cRawBitwise(data: Uint8Array, seed = 0): number {
  let crc = seed >>> 0;
  for (const b of data) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return crc >>> 0;
}

/** Standard (zlib) CRC32, bit by bit: the magic is this of "Container Image Trace Format". */
function crc32Bitwise(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of data) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return ~crc >>> 0;
}

const records: TraceRecord[] = [
  { layer: 0, offset: 0x1000, count: 0x3000 },
  { layer: 2, offset: 0x123456789, count: 512 },
];

describe('trace file codec', () => {
  it('the magic is the CRC32 of its name', () => {
    expect(crc32Bitwise(new TextEncoder().encode('Container Image Trace Format'))).toBe(TRACE_MAGIC);
  });

  it('writes the x86-64 struct layout byte for byte', () => {
    const b = encodeTrace(records);
    expect(b.length).toBe(24 + 2 * 24);
    const hex = Buffer.from(b).toString('hex');
    // header: magic, pad, data_size 48, checksum, pad
    expect(hex.slice(0, 16)).toBe('2018efc200000000');
    expect(hex.slice(16, 32)).toBe('3000000000000000');
    expect(hex.slice(40, 48)).toBe('00000000');
    // record 0: 'R', 3 zero pad bytes, layer 0, count 0x3000, offset 0x1000
    expect(hex.slice(48, 96)).toBe(`52000000${'00000000'}${'0030000000000000'}${'0010000000000000'}`);
    // record 1: layer 2, count 512, offset 0x1_2345_6789
    expect(hex.slice(96, 144)).toBe(`52000000${'02000000'}${'0002000000000000'}${'8967452301000000'}`);
    // checksum over the records, computed independently
    const sum = Buffer.from(b).readUInt32LE(16);
    expect(sum).toBe(crc32cRawBitwise(b.subarray(24)));
    expect(sum).toBe(0x8371b6c6);
  });

  it('round-trips any records', () => {
    const rec = fc.record({
      layer: fc.nat(254),
      offset: fc.nat(2 ** 40),
      count: fc.integer({ min: 1, max: 4 << 20 }),
    });
    fc.assert(
      fc.property(fc.array(rec, { maxLength: 50 }), (rs) => {
        const b = encodeTrace(rs);
        expect(isTrace(b)).toBe(true);
        expect(decodeTrace(b, 't')).toEqual(rs);
      }),
    );
  });

  it('an empty trace is valid', () => {
    expect(decodeTrace(encodeTrace([]), 't')).toEqual([]);
  });

  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(DadiError);
      expect((e as Error).message).toMatch(/^bad\.trace: trace: /);
      return (e as DadiError).code;
    }
    return 'no error';
  };

  it('refuses a flipped record byte (checksum), a bad magic, a wrong size, a hostile data_size', () => {
    const good = encodeTrace(records);
    const flipped = good.slice();
    flipped[24 + 9] ^= 1;
    expect(code(() => decodeTrace(flipped, 'bad.trace'))).toBe('ECORRUPT');
    const magic = good.slice();
    magic[0] ^= 1;
    expect(code(() => decodeTrace(magic, 'bad.trace'))).toBe('EFORMAT');
    expect(code(() => decodeTrace(good.subarray(0, good.length - 1), 'bad.trace'))).toBe('EFORMAT');
    const huge = good.slice();
    Buffer.from(huge.buffer).writeBigUInt64LE(2n ** 62n, 8);
    expect(code(() => decodeTrace(huge, 'bad.trace'))).toBe('ERANGE');
    expect(code(() => decodeTrace(new Uint8Array(10), 'bad.trace'))).toBe('EFORMAT');
  });

  it('a priority list (text) is not a trace', () => {
    expect(isTrace(new TextEncoder().encode('/usr/bin/python3\n'))).toBe(false);
  });
});
