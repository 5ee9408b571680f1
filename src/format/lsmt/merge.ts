// Merging the indexes of stacked layers into one (spec §2.9): upper mappings win, holes are filled
// from below, zeroed mappings mask lower data. Pure index arithmetic; reading is in read.ts.

import { DadiError } from '../../errors.js';
import { MAX_RW_INDEX_SIZE, MAX_STACK_LAYERS } from './constants.js';
import { type SegmentIndex, SegmentListBuilder } from './segment-index.js';

/** Tag of a level's output mappings: a number, or 'keep' for the index's own tags. */
export type MergeTag = number | 'keep';

export interface MergeOptions {
  /** tags[L] for level L (default: L, so tag k = k-th layer from the top). */
  tags?: readonly MergeTag[];
  /** Fail when the result exceeds this many entries (default 128,000,000). */
  maxEntries?: number;
}

/**
 * Merge indexes given **top first** into one sorted, non-overlapping index.
 * Adjacent pieces are not coalesced (that happens only in commit).
 *
 * @example
 * const merged = mergeIndexes([top.index, bottom.index]); // tags 0 (top) and 1 (bottom)
 */
export function mergeIndexes(indexesTopFirst: readonly SegmentIndex[], opts: MergeOptions = {}): SegmentIndex {
  const n = indexesTopFirst.length;
  if (n > MAX_STACK_LAYERS) {
    throw new DadiError('EINVAL', `lsmt merge: ${n} indexes (at most ${MAX_STACK_LAYERS} can be stacked)`);
  }
  const maxEntries = opts.maxEntries ?? MAX_RW_INDEX_SIZE;
  const out = new SegmentListBuilder(n > 0 ? Math.max(16, indexesTopFirst[0]!.length) : 16);

  const merge = (level: number, b: number, e: number): void => {
    if (level >= n || b >= e) return;
    const idx = indexesTopFirst[level]!;
    const t = opts.tags?.[level] ?? level;
    let cursor = b;
    for (let i = idx.firstEndAfter(b); i < idx.length && idx.offsets[i]! < e; i++) {
      const off = idx.offsets[i]!;
      if (off > cursor) merge(level + 1, cursor, off);
      if (out.length >= maxEntries) {
        throw new DadiError('ERANGE', `lsmt merge: merged index exceeds ${maxEntries} entries`);
      }
      let s = off;
      let len = idx.lengths[i]!;
      let m = idx.moffsets[i]!;
      const z = idx.zeroed[i] === 1;
      // Trim to [b, e): only the first and last mapping of this call can stick out.
      if (s < b) {
        if (!z) m += b - s;
        len -= b - s;
        s = b;
      }
      if (s + len > e) len = e - s;
      out.push(s, len, m, z, t === 'keep' ? idx.tags[i]! : t);
      cursor = off + idx.lengths[i]!;
    }
    if (cursor < e) merge(level + 1, cursor, e);
  };
  merge(0, 0, Number.MAX_SAFE_INTEGER);
  return out.build();
}
