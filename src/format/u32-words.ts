// An index's little-endian u32 words as numbers without a per-word call: the ZFile jump table and
// the LSMT segment index are parsed this way on the way to a layer's first mount.

import { endianness } from 'node:os';

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

/** The first `n` little-endian u32 words of `bytes`: a view when it can be one (aligned, LE host), else a copy. */
export function leU32Words(bytes: Uint8Array, n: number): Uint32Array {
  if (LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Uint32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 4 * n);
  for (let i = 0; i < n; i++) out[i] = view.getUint32(4 * i, true);
  return out;
}
