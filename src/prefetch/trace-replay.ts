// Trace replay (spec §6.4): N workers (default 16) take the planned reads in recorded order and
// read each range of its layer's uncompressed LSMT file — through ZFile, the tar view and the block
// cache — into a scratch buffer sized for the read, so that the cache holds those blocks before the
// container asks for them. Failures are skipped and counted; cancel() stops taking new reads and
// waits for the ones in flight (call it before closing the layers).
// Not the plan (trace-plan.ts) nor where the trace comes from (acceleration layer, auto-trace).

import type { BlockFile } from '../blockfile/blockfile.js';
import type { TraceRecord } from './trace-format.js';
import { planReplay } from './trace-plan.js';

export const DEFAULT_REPLAY_WORKERS = 16;

export interface ReplayStats {
  /** Records in the trace. */
  records: number;
  /** Reads planned after coalescing. */
  planned: number;
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
    this.s = { records: 0, planned: 0, reads: 0, bytes: 0, failed: 0, cancelled: false, finished: false, ms: 0 };
    this.done = Promise.resolve(records)
      .catch(() => undefined)
      .then(async (list) => {
        const plan = planReplay(list ?? []);
        this.s.records = list?.length ?? 0;
        this.s.planned = plan.length;
        const n = Math.max(1, Math.min(opts.workers ?? DEFAULT_REPLAY_WORKERS, plan.length || 1));
        await Promise.all(Array.from({ length: n }, () => this.worker(plan)));
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

  private async worker(plan: readonly TraceRecord[]): Promise<void> {
    let buf = new Uint8Array(0);
    while (!this.cancelled && this.next < plan.length) {
      const r = plan[this.next++]!;
      const file = this.layers[r.layer];
      try {
        if (!file) throw new Error(`layer ${r.layer} is not in the image (${this.layers.length} layers)`);
        if (buf.length < r.count) buf = new Uint8Array(r.count);
        const n = await file.read(buf.subarray(0, r.count), r.offset);
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
