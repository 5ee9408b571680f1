import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../../test/fixtures.js';
import { DadiError } from '../../errors.js';
import { decodeHeader, encodeHeader, Flags, hasLsmtMagic, isDataFile, isHeader, isSealed, isSparse } from './header.js';
import {
  isNullUuid,
  isValidUuid,
  NULL_UUID,
  normalizeUuid,
  randomUuid,
  uuidFromBytes,
  uuidOrNull,
  uuidToBytes,
} from './uuid.js';

const fx = haveFixtures('lsmt header fixtures');

describe('uuid helpers', () => {
  it('parses any case and emits upper case', () => {
    expect(normalizeUuid('a1b2c3d4-0001-4000-8000-00000000000f')).toBe('A1B2C3D4-0001-4000-8000-00000000000F');
    expect(() => normalizeUuid('a1b2c3d4000140008000000000000001')).toThrow(DadiError);
    expect(() => normalizeUuid('g1b2c3d4-0001-4000-8000-000000000001')).toThrow(/not a valid uuid/);
    expect(uuidOrNull('garbage')).toBe(NULL_UUID);
  });

  it('maps bytes to hex digits in order (no field swapping)', () => {
    const b = uuidToBytes('00112233-4455-6677-8899-aabbccddeeff');
    expect([...b]).toEqual([
      0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ]);
    expect(uuidFromBytes(b)).toBe('00112233-4455-6677-8899-AABBCCDDEEFF');
  });

  it('makes random upper-case v4 uuids and knows the null uuid', () => {
    const u = randomUuid();
    expect(isValidUuid(u)).toBe(true);
    expect(u).toBe(u.toUpperCase());
    expect(u[14]).toBe('4');
    expect(isNullUuid(NULL_UUID)).toBe(true);
    expect(isNullUuid('')).toBe(true);
    expect(isNullUuid(u)).toBe(false);
  });
});

describe('header codec', () => {
  it('encodes what it decodes, with version 1.1 and struct size 390', () => {
    const h = encodeHeader({
      flags: Flags.committedHeader,
      virtualSize: 2 ** 36 + 512,
      indexOffset: 2 ** 33 + 4096,
      indexSize: 256,
      uuid: 'a1b2c3d4-0001-4000-8000-000000000001',
      userTag: new TextEncoder().encode('msg'),
    });
    expect(h.length).toBe(4096);
    expect(hasLsmtMagic(h)).toBe(true);
    const d = decodeHeader(h);
    expect(d).toMatchObject({
      flags: 7,
      virtualSize: 2 ** 36 + 512,
      indexOffset: 2 ** 33 + 4096,
      indexSize: 256,
      uuid: 'A1B2C3D4-0001-4000-8000-000000000001',
      parentUuid: NULL_UUID,
      version: 1,
      subVersion: 1,
    });
    expect(new TextDecoder().decode(d.userTag)).toBe('msg');
    expect(new DataView(h.buffer).getUint32(24, true)).toBe(390);
    expect(h.subarray(390).every((b) => b === 0)).toBe(true);
  });

  it('takes a 256-byte user tag without terminator and rejects 257', () => {
    const tag = new Uint8Array(256).fill(0x41);
    expect(decodeHeader(encodeHeader({ flags: 7, virtualSize: 0, userTag: tag })).userTag.length).toBe(256);
    expect(() => encodeHeader({ flags: 7, virtualSize: 0, userTag: new Uint8Array(257) })).toThrow(/user tag/);
  });

  it('rejects a buffer without the magic', () => {
    expect(() => decodeHeader(new Uint8Array(4096), 'x.lsmt')).toThrow(/x.lsmt: no LSMT magic/);
  });

  it.skipIf(!fx)('decodes the fixture headers and re-encodes them byte for byte', () => {
    const data = readFileSync(fixture('overlaybd-samples/rw/l1.data')).subarray(0, 4096);
    const index = readFileSync(fixture('overlaybd-samples/rw/l1.index')).subarray(0, 4096);
    const l1 = readFileSync(fixture('overlaybd-samples/lsmt/l1.lsmt'));
    const trailer = l1.subarray(l1.length - 4096);
    const dh = decodeHeader(data);
    expect(dh.flags).toBe(Flags.rwData);
    expect(isHeader(dh) && isDataFile(dh) && !isSealed(dh) && !isSparse(dh)).toBe(true);
    expect(dh.virtualSize).toBe(2 ** 30);
    expect(dh.uuid).toBe('0A682DBC-29C5-4339-A6DA-51B6EF1D53A3');
    expect(dh.parentUuid).toBe(NULL_UUID);
    const ih = decodeHeader(index);
    expect(ih.flags).toBe(Flags.rwIndex);
    expect(ih.indexOffset).toBe(4096);
    const th = decodeHeader(trailer);
    expect(th).toMatchObject({ flags: Flags.sealedTrailer, indexOffset: 2242560, indexSize: 256 });
    for (const raw of [data, index, l1.subarray(0, 4096), trailer]) {
      const h = decodeHeader(raw);
      expect(Buffer.from(encodeHeader(h))).toEqual(Buffer.from(raw));
    }
  });
});
