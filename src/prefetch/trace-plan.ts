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
