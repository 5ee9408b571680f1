// What a replay reads, decided without I/O: the recorded reads in recorded order (the reference's
// FIFO), with a read that continues or overlaps the one before it on the same layer merged into it
// (up to the 4 MiB a record may span), and exact repeats of an earlier read dropped (the cache
// already holds them). Not the workers that issue the reads (trace-replay.ts).

import { MAX_TRACE_RECORD_BYTES, type TraceRecord } from './trace-format.js';

/**
 * The reads to replay, in order.
 *
 * @example planReplay([{layer:0,offset:0,count:4096},{layer:0,offset:4096,count:4096}])
 *   // → [{layer:0, offset:0, count:8192}]
 */
export function planReplay(records: readonly TraceRecord[], maxBytes = MAX_TRACE_RECORD_BYTES): TraceRecord[] {
  const out: TraceRecord[] = [];
  const seen = new Set<string>();
  for (const r of records) {
    if (r.count <= 0) continue;
    const key = `${r.layer}:${r.offset}:${r.count}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const last = out[out.length - 1];
    if (last && last.layer === r.layer && r.offset >= last.offset && r.offset <= last.offset + last.count) {
      const end = Math.max(last.offset + last.count, r.offset + r.count);
      if (end - last.offset <= maxBytes) {
        last.count = end - last.offset;
        continue;
      }
    }
    out.push({ ...r });
  }
  return out;
}

/** Where a layer keeps the bytes of [offset, offset+count) of its LSMT file: [start, end) of its stored (compressed) bytes. */
export type StoredSpan = (offset: number, count: number) => readonly [number, number];

export interface PrefetchPlanOptions {
  /** Per layer index, where its reads are stored; a layer without one stores them as they are. */
  spans?: readonly (StoredSpan | undefined)[];
  /**
   * Stored bytes between ranges that may be fetched to join them, as a share of the stored bytes
   * the trace needs (PREFETCH_GAP_SHARE); the smallest gaps are joined first.
   */
  gapShare?: number;
  /** No gap larger than this is joined (PREFETCH_MAX_GAP). */
  maxGap?: number;
  /** No joined range spans more stored bytes than this (one of the cache's largest GETs). */
  maxStored?: number;
}

/**
 * Each joined gap saves a GET (a round trip, or a place in the queue of the registry pool's 16
 * connections, and ~11 ms of the registry's CPU) for its bytes. Python's trace (583 records, 2
 * layers, 9.21 MB stored) is 116 ranges; joining the smallest gaps for 2% more bytes leaves 51, 5%
 * 42, 10% 36. At 25% (gaps up to 512 KiB) a traced Python start makes 32 requests instead of 44 for
 * 11.9 MB instead of 10.2 (stargz 10.49): 40-55 ms sooner at 1 Gbit/s (2 and 50 ms RTT), where the
 * registry's time per GET, not the bytes, held the replay; on a slow link the bytes cost more
 * (1.7 MB is 136 ms at 100 Mbit/s).
 */
export const PREFETCH_GAP_SHARE = 0.25;
/** A gap wider than this is not fetched whatever the share left. */
export const PREFETCH_MAX_GAP = 512 * 1024;
/** The cache's largest GET (BlockCache's default maxFetchSize). */
export const PREFETCH_MAX_STORED = 1 << 20;

interface Range {
  layer: number;
  offset: number;
  end: number;
  s0: number;
  s1: number;
  first: number;
}

/**
 * The ranges to prefetch without reading them (the bytes go to the cache below, undecoded): the
 * recorded reads of each layer joined where they are stored — overlapping or adjacent, then across
 * the smallest gaps while the gaps' bytes stay within `gapShare` of the stored bytes — each at
 * most `maxStored` stored bytes, ordered by their first recorded read, so that what the container
 * reads first is asked for first. Few large GETs where the recorded order gives many small ones.
 *
 * @example planPrefetch([{layer:0,offset:8192,count:4096},{layer:0,offset:0,count:4096}], {gapShare:1})
 *   // → [{layer:0, offset:0, count:12288}] (the 4 KiB gap joined)
 */
export function planPrefetch(records: readonly TraceRecord[], opts: PrefetchPlanOptions = {}): TraceRecord[] {
  const share = opts.gapShare ?? PREFETCH_GAP_SHARE;
  const maxGap = opts.maxGap ?? PREFETCH_MAX_GAP;
  const maxStored = opts.maxStored ?? PREFETCH_MAX_STORED;
  const byLayer = new Map<number, Range[]>();
  records.forEach((r, i) => {
    if (r.count <= 0) return;
    const span = opts.spans?.[r.layer];
    const [s0, s1] = span ? span(r.offset, r.count) : [r.offset, r.offset + r.count];
    const list = byLayer.get(r.layer) ?? [];
    list.push({ layer: r.layer, offset: r.offset, end: r.offset + r.count, s0, s1, first: i });
    byLayer.set(r.layer, list);
  });
  // Overlapping and adjacent reads of a layer first: their union costs nothing more.
  const runs: Range[][] = [];
  let stored = 0;
  for (const list of byLayer.values()) {
    list.sort((a, b) => a.s0 - b.s0 || a.offset - b.offset);
    const run: Range[] = [];
    for (const r of list) {
      const cur = run[run.length - 1];
      if (cur && r.s0 <= cur.s1 && Math.max(cur.s1, r.s1) - cur.s0 <= maxStored) join(cur, r);
      else run.push({ ...r });
    }
    for (const r of run) stored += r.s1 - r.s0;
    runs.push(run);
  }
  // Then the gaps, smallest first, while their bytes fit the share.
  const gaps: { run: Range[]; i: number; bytes: number }[] = [];
  for (const run of runs) {
    for (let i = 1; i < run.length; i++) {
      const bytes = run[i]!.s0 - run[i - 1]!.s1;
      if (bytes <= maxGap) gaps.push({ run, i, bytes });
    }
  }
  gaps.sort((a, b) => a.bytes - b.bytes);
  let budget = share * stored;
  const joins = new Set<Range>();
  for (const g of gaps) {
    if (g.bytes > budget) break;
    budget -= g.bytes;
    joins.add(g.run[g.i]!);
  }
  const out: Range[] = [];
  for (const run of runs) {
    let cur: Range | undefined;
    for (const r of run) {
      if (cur && joins.has(r) && r.s1 - cur.s0 <= maxStored) join(cur, r);
      else out.push((cur = r));
    }
  }
  out.sort((a, b) => a.first - b.first);
  return out.map((r) => ({ layer: r.layer, offset: r.offset, count: r.end - r.offset }));
}

function join(into: Range, r: Range): void {
  into.offset = Math.min(into.offset, r.offset);
  into.end = Math.max(into.end, r.end);
  into.s1 = Math.max(into.s1, r.s1);
  into.first = Math.min(into.first, r.first);
}
