import { describe, expect, it } from 'vitest';
import {
  decodeTarHeader,
  encodeTarHeader,
  formatPaxRecord,
  octal,
  octalNoNul,
  parsePaxRecords,
  parseTarNumber,
  paxNumber,
  paxTime,
  TAR_FIELDS,
  TarExtensions,
  TarTypeflag,
  tarText,
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
    // Strict: only spaces may follow the digits before the NUL (what tar writers produce).
    expect(parseTarNumber(bytes(' 17 \0zz'), true)).toBe(15);
    expect(parseTarNumber(bytes('17z'), true)).toBeUndefined();
    expect(parseTarNumber(bytes('17z'))).toBe(15);
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
    expect(parsePaxRecords(bytes('15 size=145185\n9 path=a\n\0\0'))).toEqual(
      new Map([
        ['size', bytes('145185')],
        ['path', bytes('a')],
      ]),
    );
    for (const bad of ['15 size=145185', '3 a\n', 'x size=1\n', '9 size0\n\n', '99 size=1\n', '6 =1\n']) {
      expect(() => parsePaxRecords(bytes(bad)), bad).toThrow(/PAX record/);
    }
    const records = parsePaxRecords(bytes('12 size=077\n10 uid=-1\n15 mtime=-1.25\n'));
    expect(paxNumber(records, 'size')).toBe(77);
    expect(() => paxNumber(records, 'uid')).toThrow(/bad PAX uid "-1"/);
    expect(paxTime(records, 'mtime')).toEqual({ sec: -2, nsec: 750000000 });
    expect(paxNumber(records, 'gid')).toBeUndefined();
  });

  it('decodes what it encodes, with ustar, GNU and signed checksums', () => {
    const block = encodeTarHeader(
      { name: 'a/b', size: octalNoNul(1234, 12), typeflag: '0', magic: 'ustar', version: '00', uname: 'é' },
      { checksum: true },
    );
    const h = decodeTarHeader(block);
    expect(tarText(h.name)).toBe('a/b');
    expect(h).toMatchObject({ size: 1234, typeflag: '0', format: 'ustar', checksumOk: true, zero: false });
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

  it('applies extension headers: PAX over GNU long name over ustar prefix, globals kept', () => {
    const ext = new TarExtensions();
    const h = decodeTarHeader(
      encodeTarHeader({ name: 'n', prefix: 'p', linkname: 'l', magic: 'ustar', version: '00' }, { checksum: true }),
    );
    expect(ext.pending).toBe(false);
    expect(tarText(ext.take(h).path)).toBe('p/n');
    ext.add(TarTypeflag.GNU_LONGNAME, bytes('long\0junk'));
    ext.add(TarTypeflag.GNU_LONGLINK, bytes('link'));
    ext.add(TarTypeflag.PAX_GLOBAL, bytes('10 uid=42\n'));
    expect(ext.pending).toBe(true);
    let m = ext.take(h);
    expect([tarText(m.path), tarText(m.linkpath), paxNumber(m.records, 'uid')]).toEqual(['long', 'link', 42]);
    ext.add(TarTypeflag.GNU_LONGNAME, bytes('long'));
    ext.add(TarTypeflag.PAX, bytes('10 path=x\n'));
    m = ext.take(h);
    expect([tarText(m.path), tarText(m.linkpath), paxNumber(m.records, 'uid')]).toEqual(['x', 'l', 42]);
    expect(ext.pending).toBe(false);
  });
});
