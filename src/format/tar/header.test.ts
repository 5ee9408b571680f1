import { describe, expect, it } from 'vitest';
import {
  decodeTarHeader,
  encodeTarHeader,
  formatPaxRecord,
  octal,
  octalNoNul,
  parsePaxRecords,
  parseTarNumber,
  TAR_FIELDS,
} from './header.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('tar header fields', () => {
  it('formats numbers like the reference snprintf calls', () => {
    expect(octal(0o100644, 8)).toBe('100644 ');
    expect(octal(0, 8)).toBe('     0 ');
    expect(octal(0o5356, 8)).toBe('  5356 ');
    expect(octal(0o12345670, 8)).toBe('1234567'); // truncated like snprintf
    expect(octalNoNul(15, 12)).toBe('         17 ');
    expect(octalNoNul(0, 12)).toBe('          0 ');
  });

  it('parses octal, space/NUL padded and GNU base-256 numbers', () => {
    expect(parseTarNumber(bytes('00022045237\0'))).toBe(4737695);
    expect(parseTarNumber(bytes('         17 '))).toBe(15);
    expect(parseTarNumber(bytes('\0\0\0\0'))).toBe(0);
    expect(parseTarNumber(bytes('zz'))).toBe(0);
    expect(parseTarNumber(Uint8Array.of(0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1))).toBe(2 ** 16 * 2 + 1);
    expect(parseTarNumber(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toBeUndefined();
    expect(
      parseTarNumber(Uint8Array.of(0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
    ).toBeUndefined();
    expect(parseTarNumber(bytes('77777777777777777777777'))).toBeUndefined();
  });

  it('formats and parses PAX records (length counts itself)', () => {
    expect(formatPaxRecord('size', '0')).toBe('9 size=0\n');
    expect(formatPaxRecord('size', '145185')).toBe('15 size=145185\n');
    expect(formatPaxRecord('path', 'x'.repeat(91))).toBe(`101 path=${'x'.repeat(91)}\n`); // the digit-count rollover
    for (let n = 1; n < 300; n++) {
      const rec = formatPaxRecord('k', 'v'.repeat(n));
      expect(Number.parseInt(rec, 10)).toBe(rec.length);
    }
    expect(parsePaxRecords(bytes('15 size=145185\n9 path=a\n'))).toEqual(
      new Map([
        ['size', '145185'],
        ['path', 'a'],
      ]),
    );
    for (const bad of ['15 size=145185', '3 a\n', 'x size=1\n', '9 size0\n\n', '99 size=1\n']) {
      expect(parsePaxRecords(bytes(bad))).toBeUndefined();
    }
  });

  it('decodes what it encodes, with ustar, GNU and signed checksums', () => {
    const block = encodeTarHeader(
      { name: 'a/b', size: octalNoNul(1234, 12), typeflag: '0', magic: 'ustar', version: '00', uname: 'é' },
      { checksum: true },
    );
    const h = decodeTarHeader(block);
    expect(h).toMatchObject({ name: 'a/b', size: 1234, typeflag: '0', format: 'ustar', checksumOk: true, zero: false });
    expect(h.uname).toBe('é');
    // A checksum computed with signed bytes (old tars) is accepted too.
    const signedSum = block.reduce((s, b, i) => s + (i >= 148 && i < 156 ? 32 : b > 127 ? b - 256 : b), 0);
    block.set(bytes(octal(signedSum, 8)), TAR_FIELDS.chksum.offset);
    expect(decodeTarHeader(block).checksumOk).toBe(true);
    block[0] = 0x62;
    expect(decodeTarHeader(block).checksumOk).toBe(false);
    const gnu = encodeTarHeader({ name: 'g', magic: 'ustar ', version: ' \0' }, { checksum: true });
    expect(decodeTarHeader(gnu).format).toBe('gnu');
    expect(decodeTarHeader(new Uint8Array(512))).toMatchObject({ zero: true, format: 'other' });
  });
});
