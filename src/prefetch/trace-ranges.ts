// The blob ranges a trace's replay fetches, published beside the trace as an annotation of the
// acceleration layer (a dadi extension: the reference ignores it). A host reads the manifest
// first; with these ranges it fetches the replay's bytes at once, with the layers' indexes and the
// trace, instead of one round trip later (the replay needs the trace, and each ZFile's index to
// find where its reads are stored). The replay itself still runs from the trace and finds these
// ranges cached or in flight. Bytes and strings only: computed at record-trace (image/trace-image.ts),
// read as the daemon resolves (runtime/daemon.ts).

import type { TraceRecord } from './trace-format.js';
import { planPrefetch, type StoredSpan } from './trace-plan.js';

/** The acceleration layer's annotation: `LAYER:OFFSET+LENGTH` ranges of the lower layers' blobs, comma-separated. */
export const TRACE_BLOB_RANGES_ANNOTATION = 'io.dadi.trace.blob-ranges';
/** At most this many ranges are published (and read); a longer plan publishes none. */
export const MAX_BLOB_RANGES = 512;
/** A range is at most one of the cache's largest GETs (trace-plan.ts PREFETCH_MAX_STORED), with room for alignment. */
export const MAX_BLOB_RANGE_BYTES = 4 << 20;

/** A range of a lower layer's blob (layer: index among the lowers, bottom 0, as in a trace). */
export interface BlobRange {
  layer: number;
  offset: number;
  length: number;
}

/** What a lower layer's blob holds: where its LSMT file's bytes are stored in the blob. */
export interface StoredLayer {
  /** Blob offset of the LSMT file's stored bytes [start, end) for [offset, offset+count) (tar payload included). */
  span: StoredSpan;
}

/** The replay's planned reads (trace-plan.ts planPrefetch) as blob ranges; undefined when too many. */
export function blobRangesOf(records: readonly TraceRecord[], layers: readonly StoredLayer[]): BlobRange[] | undefined {
  const plan = planPrefetch(records, { spans: layers.map((l) => l.span) });
  const out: BlobRange[] = [];
  for (const r of plan) {
    const layer = layers[r.layer];
    if (!layer) continue;
    const [s0, s1] = layer.span(r.offset, r.count);
    if (s1 <= s0 || s1 - s0 > MAX_BLOB_RANGE_BYTES) continue;
    out.push({ layer: r.layer, offset: s0, length: s1 - s0 });
  }
  return out.length > 0 && out.length <= MAX_BLOB_RANGES ? out : undefined;
}

export function encodeBlobRanges(ranges: readonly BlobRange[]): string {
  return ranges.map((r) => `${r.layer}:${r.offset}+${r.length}`).join(',');
}

/**
 * The ranges of an annotation value for an image of `layers` lower layers; undefined (read nothing)
 * when absent or malformed in any way: a bad hint is ignored, never trusted in part.
 */
export function decodeBlobRanges(value: unknown, layers: number): BlobRange[] | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_BLOB_RANGES * 40) return undefined;
  const parts = value.split(',');
  if (parts.length > MAX_BLOB_RANGES) return undefined;
  const out: BlobRange[] = [];
  for (const p of parts) {
    const m = /^(\d{1,4}):(\d{1,15})\+(\d{1,8})$/.exec(p);
    if (!m) return undefined;
    const [layer, offset, length] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (layer >= layers || length === 0 || length > MAX_BLOB_RANGE_BYTES) return undefined;
    out.push({ layer, offset, length });
  }
  return out;
}

/** A byte range [offset, end) of a blob. */
export interface Span {
  offset: number;
  end: number;
}

/** A published range joins the head's or the tail's fetch across at most this gap (bytes fetched and dropped). */
export const JOIN_EARLY_MAX_GAP = 64 * 1024;
/**
 * ... while that fetch grows by at most this much: the layer opens once its head and tail are in,
 * and a head grown over Python's first range (622 KB more) held the open of its layer behind it.
 */
export const JOIN_EARLY_MAX_GROWTH = 256 * 1024;

/**
 * A layer's early fetches as few GETs: its head's and its tail's (the tar and ZFile headers, the
 * indexes), each grown over the published ranges that overlap it, touch it or lie within
 * JOIN_EARLY_MAX_GAP of it (by JOIN_EARLY_MAX_GROWTH at most), and the ranges left over in their
 * order. The first ranges of a replay are the ext4 superblock and group descriptors (right after
 * the headers) and the inode tables and directories stored last (just before the indexes): cat's
 * four were three GETs of their own beside the two, on a registry that spends ~11 ms of CPU on each.
 */
export function joinEarlyFetches(
  head: Span,
  tail: Span | undefined,
  ranges: readonly { offset: number; length: number }[],
  maxGap = JOIN_EARLY_MAX_GAP,
  maxGrowth = JOIN_EARLY_MAX_GROWTH,
): { head: Span; tail: Span | undefined; rest: { offset: number; length: number }[] } {
  const h = { ...head };
  const t = tail && { ...tail };
  const joined = new Set<number>();
  const order = ranges.map((_, i) => i);
  const endOf = (i: number) => ranges[i]!.offset + ranges[i]!.length;
  // Upwards from the head, nearest first, so that each join can bring the next one within reach.
  for (const i of [...order].sort((a, b) => ranges[a]!.offset - ranges[b]!.offset)) {
    const r = ranges[i]!;
    if (r.offset < h.offset || r.offset > h.end + maxGap || endOf(i) - head.end > maxGrowth) continue;
    h.end = Math.max(h.end, endOf(i));
    joined.add(i);
  }
  // Downwards from the tail likewise.
  if (t && tail) {
    for (const i of [...order].sort((a, b) => endOf(b) - endOf(a))) {
      const r = ranges[i]!;
      if (joined.has(i) || endOf(i) > t.end || endOf(i) < t.offset - maxGap || tail.offset - r.offset > maxGrowth) {
        continue;
      }
      t.offset = Math.min(t.offset, r.offset);
      joined.add(i);
    }
  }
  return { head: h, tail: t, rest: ranges.filter((_, i) => !joined.has(i)) };
}
