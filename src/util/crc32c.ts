// overlaybd's "raw" CRC32C: Castagnoli polynomial without the initial inversion and final XOR,
// as used for ZFile block CRCs, header digests and jump-table CRCs (spec §0).
// Not the standard CRC-32C (use @node-rs/crc32 directly for that).

import { createRequire } from 'node:module';
import type * as Crc32 from '@node-rs/crc32';

const { crc32c } = loadCrc32();

/**
 * @node-rs/crc32, from this platform's binding package when it is installed: the package's own
 * entry first probes which binding fits (a failed require of a file it does not ship, package.json
 * reads), ~30-45 ms of every thread that loads this on the 2-vCPU VM (the conversion's main thread
 * and its compression workers, as they start). A binding that does not load (another libc) falls
 * back to the package's entry, which picks the right one.
 * require, not import: an ES import of a CommonJS package has Node lex its source for export names
 * (29 KB here), which makes V8 compile its lexer with TurboFan in every thread that loads this.
 */
function loadCrc32(): typeof Crc32 {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux') {
    try {
      return require(`@node-rs/crc32-linux-${process.arch}-gnu`) as typeof Crc32;
    } catch {}
  }
  return require('@node-rs/crc32') as typeof Crc32;
}

/**
 * CRC32C-raw(data, seed): the register starts at `seed`, no pre/post inversion.
 * Chains like a running CRC: crc32cRaw(b, crc32cRaw(a, s)) === crc32cRaw(a ++ b, s).
 *
 * @example crc32cRaw(new TextEncoder().encode('123456789')) === 0x58e3fa20
 */
export function crc32cRaw(data: Uint8Array, seed = 0): number {
  return ~crc32c(data, ~seed >>> 0) >>> 0;
}
