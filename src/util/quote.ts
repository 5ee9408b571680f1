// Safe display of names and bytes that come from users or from files: messages never print raw
// control characters or invalid UTF-8, and names inside images print in one escaped form that the
// CLI accepts back. Not for JSON output (that escapes on its own).
//
// The escaped form of a byte string (documented in README, "Names with unusual bytes"):
//   - `\` is written `\\`;
//   - bytes of printable UTF-8 characters (U+0020–U+007E and valid multi-byte sequences of
//     characters that are not controls, format characters or line/paragraph separators) are
//     written as they are;
//   - every other byte (control characters, DEL, bytes of invalid UTF-8, the bytes of an invisible
//     character such as U+202E) is written `\xNN`
//     (two lower-case hex digits).
// `unescapeName` reverses it; any other `\` sequence is an error.

import { DadiError } from '../errors.js';

/**
 * A name as messages show it: unchanged when it is plain printable text, else JSON-quoted (which
 * escapes control characters; invalid UTF-8 already became U+FFFD and is shown as \ufffd).
 */
export function quote(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
  return /^[^\u0000-\u001f\u007f-\u009f\ufffd"\\]*$/.test(name) && name !== '' ? name : jsonQuote(name);
}

/**
 * Text for a terminal: control characters (C0 but newline and tab, DEL, C1) as `\xNN` and
 * U+FFFD (what invalid UTF-8 became) as `\ufffd`, so nothing read from a file can move the
 * cursor, change colours or ring the bell. Used on every error message and printed field.
 */
export function terminalSafe(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufffd]/g, (c) => {
    const cp = c.charCodeAt(0);
    return cp === 0xfffd ? '\\ufffd' : `\\x${cp.toString(16).padStart(2, '0')}`;
  });
}

function jsonQuote(name: string): string {
  return JSON.stringify(name).replace(/\ufffd/g, '\\ufffd');
}

/** Characters that print as nothing or change how text around them prints (C1, format, separators). */
const INVISIBLE = /[\p{C}\p{Zl}\p{Zp}]/u;

/** The escaped form of a byte string (see the top of this file). */
export function escapeName(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    if (b === 0x5c) {
      out += '\\\\';
      i++;
      continue;
    }
    if (b >= 0x20 && b < 0x7f) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    const n = utf8SequenceLength(bytes, i);
    if (n > 0) {
      const ch = Buffer.from(bytes.subarray(i, i + n)).toString('utf8');
      if (!INVISIBLE.test(ch)) {
        out += ch;
        i += n;
        continue;
      }
    }
    out += `\\x${b.toString(16).padStart(2, '0')}`;
    i++;
  }
  return out;
}

/** Length of the well-formed UTF-8 multi-byte sequence starting at `i`, or 0. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  let n: number;
  let min: number;
  if (c >= 0xc2 && c <= 0xdf) [n, min] = [2, 0x80];
  else if (c >= 0xe0 && c <= 0xef) [n, min] = [3, 0x800];
  else if (c >= 0xf0 && c <= 0xf4) [n, min] = [4, 0x10000];
  else return 0;
  if (i + n > b.length) return 0;
  let cp = c & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) {
    const x = b[i + k]!;
    if ((x & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (x & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

/**
 * Bytes of an escaped name (the reverse of `escapeName`; plain text is taken as UTF-8).
 * @example unescapeName('caf\\xe9') // Uint8Array [0x63, 0x61, 0x66, 0xe9]
 */
export function unescapeName(text: string): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < text.length; ) {
    const ch = text[i]!;
    if (ch !== '\\') {
      const cp = text.codePointAt(i)!;
      const s = String.fromCodePoint(cp);
      out.push(...enc.encode(s));
      i += s.length;
      continue;
    }
    const next = text[i + 1];
    if (next === '\\') {
      out.push(0x5c);
      i += 2;
      continue;
    }
    const hex = text.slice(i + 2, i + 4);
    if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(hex)) {
      out.push(Number.parseInt(hex, 16));
      i += 4;
      continue;
    }
    throw new DadiError(
      'EINVAL',
      `${jsonQuote(text)}: bad escape at character ${i + 1} (write \\\\ for a backslash, \\xNN for a byte)`,
    );
  }
  return Uint8Array.from(out);
}
