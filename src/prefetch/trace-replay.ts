// Trace replay (spec §6.4): N workers (default 16) take the planned ranges in order and bring each
// range of its layer's uncompressed LSMT file into the block cache before the container asks for
// it. Layers that can prefetch (ZFile → tar view → block cache) get planPrefetch's few large ranges
// joined by where they are stored, fetched undecoded (the container's own reads decode them, as a
// warm start does); otherwise each planned read is read, as the reference does, through every stage
// into a scratch buffer. Failures are skipped and counted; cancel() stops taking new ranges and
// waits for the ones in flight (call it before closing the layers).
// Not the plan (trace-plan.ts) nor where the trace comes from (acceleration layer, auto-trace).

import type { BlockFile } from '../blockfile/blockfile.js';
import { canPrefetch } from '../blockfile/prefetch.js';
import type { TraceRecord } from './trace-format.js';
import { planPrefetch, planReplay, type StoredSpan } from './trace-plan.js';

export const DEFAULT_REPLAY_WORKERS = 16;

export interface ReplayStats {
  /** Records in the trace. */
  records: number;
  /** Reads planned after coalescing. */
  planned: number;
  /** The ranges were prefetched into the cache (not read and decoded). */
  prefetched: boolean;
  /** Reads done, and their bytes (uncompressed). */
  reads: number;
  bytes: number;
  /** Reads that failed (skipped). */
  failed: number;
  /** Stopped before the end by cancel(). */
  cancelled: boolean;
  /** Every worker has stopped. */
  finished: boolean;
  /** Milliseconds from start to the last worker's stop (or so far). */
  ms: number;
}

export interface ReplayOptions {
  /** Parallel reads (default 16). */
  workers?: number;
  /** Told about the first failure (later ones are only counted). */
  log?: (message: string) => void;
}

export class TraceReplay {
  /** Resolves when every worker has stopped (never rejects). */
  readonly done: Promise<ReplayStats>;
  private readonly s: ReplayStats;
  private readonly started = Date.now();
  private next = 0;
  private cancelled = false;

  /**
   * Start replaying `records` on `layers` (index = the records' layer index). The records may still
   * be on their way (a promise; undefined or a rejection means nothing to replay): the layers open
   * meanwhile.
   */
  constructor(
    private readonly layers: readonly BlockFile[],
    records: readonly TraceRecord[] | Promise<readonly TraceRecord[] | undefined>,
    private readonly opts: ReplayOptions = {},
  ) {
    this.s = {
      records: 0,
      planned: 0,
      prefetched: false,
      reads: 0,
      bytes: 0,
      failed: 0,
      cancelled: false,
      finished: false,
      ms: 0,
    };
    this.done = Promise.resolve(records)
      .catch(() => undefined)
      .then(async (list) => {
        // Every layer or none: a plan mixes the layers' ranges in one order.
        const prefetch = layers.length > 0 && layers.every(canPrefetch);
        const plan = prefetch ? planPrefetch(list ?? [], { spans: layers.map(storedSpanOf) }) : planReplay(list ?? []);
        this.s.prefetched = prefetch;
        this.s.records = list?.length ?? 0;
        this.s.planned = plan.length;
        const n = Math.max(1, Math.min(opts.workers ?? DEFAULT_REPLAY_WORKERS, plan.length || 1));
        await Promise.all(Array.from({ length: n }, () => this.worker(plan, prefetch)));
        this.s.finished = true;
        this.s.ms = Date.now() - this.started;
        return this.stats();
      });
  }

  stats(): ReplayStats {
    return { ...this.s, ms: this.s.finished ? this.s.ms : Date.now() - this.started };
  }

  /** Take no more reads; resolves once the reads in flight have settled. */
  cancel(): Promise<ReplayStats> {
    if (!this.s.finished && (this.s.planned === 0 || this.next < this.s.planned)) {
      this.cancelled = true;
      this.s.cancelled = true;
    }
    return this.done;
  }

  private async worker(plan: readonly TraceRecord[], prefetch: boolean): Promise<void> {
    let buf = new Uint8Array(0);
    while (!this.cancelled && this.next < plan.length) {
      const r = plan[this.next++]!;
      const file = this.layers[r.layer];
      try {
        if (!file) throw new Error(`layer ${r.layer} is not in the image (${this.layers.length} layers)`);
        let n: number;
        if (prefetch && canPrefetch(file)) {
          n = Math.max(0, Math.min(r.count, file.size - r.offset));
          if (n > 0) await file.prefetch(r.offset, n);
        } else {
          if (buf.length < r.count) buf = new Uint8Array(r.count);
          n = await file.read(buf.subarray(0, r.count), r.offset);
        }
        this.s.reads++;
        this.s.bytes += n;
      } catch (e) {
        if (this.s.failed++ === 0) {
          this.opts.log?.(
            `trace replay: read of ${r.count} bytes at ${r.offset} of layer ${r.layer} failed (skipped): ${(e as Error).message}`,
          );
        }
      }
    }
  }
}

/** A layer that knows where it stores a range (a ZFile: ZFileReader.storedSpan). */
function storedSpanOf(file: BlockFile): StoredSpan | undefined {
  const f = file as BlockFile & { storedSpan?: StoredSpan };
  return typeof f.storedSpan === 'function' ? (offset, count) => f.storedSpan!(offset, count) : undefined;
}
