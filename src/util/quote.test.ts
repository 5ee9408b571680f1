import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeName, quote, terminalSafe, unescapeName } from './quote.js';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('escapeName / unescapeName', () => {
  it('keeps printable UTF-8, escapes backslash, control and invalid bytes', () => {
    expect(escapeName(Buffer.from('etc/passwd'))).toBe('etc/passwd');
    expect(escapeName(Buffer.from('café ☃'))).toBe('café ☃');
    expect(escapeName(bytes(0x63, 0x61, 0x66, 0xe9))).toBe('caf\\xe9');
    expect(escapeName(bytes(0x61, 0x5c, 0x62))).toBe('a\\\\b');
    expect(escapeName(bytes(0x01, 0x0a, 0x7f, 0x1b))).toBe('\\x01\\x0a\\x7f\\x1b');
    // C1 controls (U+0080–U+009F) are valid UTF-8 but not printable.
    expect(escapeName(bytes(0xc2, 0x85))).toBe('\\xc2\\x85');
    // Right-to-left override: valid, but it would reorder what the terminal shows.
    expect(escapeName(Buffer.from('a\u202eb'))).toBe('a\\xe2\\x80\\xaeb');
    // Overlong and surrogate encodings are invalid UTF-8.
    expect(escapeName(bytes(0xc0, 0xaf))).toBe('\\xc0\\xaf');
    expect(escapeName(bytes(0xed, 0xa0, 0x80))).toBe('\\xed\\xa0\\x80');
  });

  it('round-trips every byte string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        expect(Buffer.from(unescapeName(escapeName(b))).equals(Buffer.from(b))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('takes plain text as UTF-8 and refuses other backslash sequences', () => {
    expect(Buffer.from(unescapeName('café')).toString()).toBe('café');
    expect(unescapeName('\\xFF')).toEqual(bytes(0xff));
    expect(() => unescapeName('a\\nb')).toThrow(/bad escape at character 2/);
    expect(() => unescapeName('a\\x4')).toThrow(/bad escape/);
    expect(() => unescapeName('trailing\\')).toThrow(/bad escape/);
  });
});

describe('messages', () => {
  it('quote leaves plain names alone and JSON-quotes the rest', () => {
    expect(quote('/tmp/out.img')).toBe('/tmp/out.img');
    expect(quote('a\nb')).toBe('"a\\nb"');
    expect(quote('bad\ufffd')).toBe('"bad\\ufffd"');
    expect(quote('')).toBe('""');
  });

  it('terminalSafe escapes control characters but keeps newlines and tabs', () => {
    expect(terminalSafe('a\x1b[31mb\x07\ufffd\n\tc')).toBe('a\\x1b[31mb\\x07\\ufffd\n\tc');
    expect(terminalSafe('\x85')).toBe('\\x85');
  });
});
