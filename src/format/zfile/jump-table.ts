// The ZFile jump table (spec §3.4): the stored length of every block as a u32, turned into each
// block's stored start in one pass. Not the reading of the table (reader.ts loads and CRC-checks it).
//
// On the critical path of every lazy mount: a 200 MB layer has ~50,000 blocks, parsed by a daemon
// whose JIT has not seen a table that size yet. So the table is read as a Uint32Array over its own
// bytes (no per-entry call, no per-entry object) and validated while the offsets are summed.

import { DadiError } from '../../errors.js';
import { leU32Words } from '../u32-words.js';

/** Block starts and the largest stored block, from a jump table. */
export interface BlockOffsets {
  /** Stored start of each block; entry `n` is where the last block ends. */
  offsets: Float64Array;
  maxStored: number;
}

/**
 * A buffer for a jump table of `n` entries that `blockOffsets` reads without copying: its own
 * 4-byte aligned memory (Buffer.allocUnsafe may hand out an unaligned slice of its pool).
 */
export function jumpTableBuffer(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(4 * n));
}

/**
 * The stored start of each of the `n` blocks described by `table` (n little-endian u32 lengths),
 * the first starting at `dataStart`. Every length must be in (minLen, maxLen]: EFORMAT naming `name`
 * and the block otherwise.
 */
export function blockOffsets(
  name: string,
  table: Uint8Array,
  n: number,
  dataStart: number,
  minLen: number,
  maxLen: number,
): BlockOffsets {
  if (table.length < 4 * n) {
    throw new DadiError('EFORMAT', `${name}: ZFile jump table holds ${table.length} bytes, not ${4 * n}`);
  }
  const lengths = leU32Words(table, n);
  const offsets = new Float64Array(n + 1);
  // (len - minLen - 1) >>> 0 < span  ⇔  minLen < len <= maxLen, in one unsigned compare.
  const span = maxLen - minLen;
  let pos = dataStart;
  let maxStored = 0;
  offsets[0] = pos;
  for (let k = 0; k < n; k++) {
    const len = lengths[k]!;
    if ((len - minLen - 1) >>> 0 >= span) throw badLength(name, k, len);
    if (len > maxStored) maxStored = len;
    pos += len;
    offsets[k + 1] = pos;
  }
  return { offsets, maxStored };
}

function badLength(name: string, k: number, len: number): DadiError {
  return new DadiError('EFORMAT', `${name}: ZFile block ${k} has a bad stored length ${len}`);
}
