// overlaybd's "raw" CRC32C: Castagnoli polynomial without the initial inversion and final XOR,
// as used for ZFile block CRCs, header digests and jump-table CRCs (spec §0).
// Not the standard CRC-32C (use @node-rs/crc32 directly for that).

import { createRequire } from 'node:module';
import type * as Crc32 from '@node-rs/crc32';

// require, not import: an ES import of a CommonJS package has Node lex its source for export names
// (29 KB here), which makes V8 compile its lexer with TurboFan in every thread that loads this
// (the conversion's main thread and each of its workers: ~0.25 s of compile time each).
const { crc32c } = createRequire(import.meta.url)('@node-rs/crc32') as typeof Crc32;

/**
 * CRC32C-raw(data, seed): the register starts at `seed`, no pre/post inversion.
 * Chains like a running CRC: crc32cRaw(b, crc32cRaw(a, s)) === crc32cRaw(a ++ b, s).
 *
 * @example crc32cRaw(new TextEncoder().encode('123456789')) === 0x58e3fa20
 */
export function crc32cRaw(data: Uint8Array, seed = 0): number {
  return ~crc32c(data, ~seed >>> 0) >>> 0;
}
