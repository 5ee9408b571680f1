// How long a chunk request to a peer or the root may take before that source counts as slow.
// A fixed deadline (the old 10 s) is either too long to notice a parent that crawls or too short
// for a slow link; instead the deadline follows what the link gives: a moving estimate of the
// time per byte and the time to the first byte of successful transfers, times a slack, never
// below `minMs` (scheduling noise on a busy host) nor above `maxMs` (the hard cap, also used until
// a first transfer was measured). A request past its deadline fails as 'timeout', which the
// scheduler (schedule.ts) reports as 'slow' and the tracker answers with a new parent. Pure: the
// caller measures and passes durations in; no clock, no I/O. The scale simulator can drive it.
//
//   const d = new TransferDeadline({ minMs: 1000, maxMs: 10_000 });
//   const ms = d.deadlineMs(1 << 20);         // before asking for 1 MiB
//   d.observe(1 << 20, firstByteMs, totalMs);  // after a successful transfer
//
// Hedging: a request to a peer still unanswered after `hedgeMs` (the expected duration times a
// smaller slack, never below `hedgeMinMs`) is sent a second time to the next hop up (schedule.ts
// ChunkFetch.hedge), and the first good answer wins. A dead parent then costs its children one
// hedge delay instead of a whole deadline and a re-fetch from the root: bench/scale, 5% of 1,000
// hosts dying at the median chunk arrival, all started 2.98 → 1.01 s (fault-free 1.01 s), the
// root's upload 1140 → 142 MB (as fault-free), 0 hedges in the fault-free run. The floor keeps
// the synchronized start's honest waits (a parent fetching the chunk itself) from hedging: at a
// 100 ms floor the failure run hedged 3,730 requests and took 11 s; 250 ms: 699 and 1.01 s.
//
// Only successful transfers are observed: a slow source that timed out does not slow the estimate
// down (or every later deadline would stretch to fit it).

import { DadiError } from '../errors.js';

export interface TransferDeadlineOptions {
  /** Lower bound of every deadline (default 1000 ms). */
  minMs?: number;
  /** Upper bound, and the deadline before any transfer was measured (default 10 000 ms). */
  maxMs?: number;
  /** How many times the expected duration a transfer may take (default 4). */
  slack?: number;
  /** Weight of the newest sample in the moving averages (default 0.2). */
  weight?: number;
  /** Lower bound of the hedge delay (default 250 ms). */
  hedgeMinMs?: number;
  /** How many times the expected duration a request waits before it is hedged (default 1.5). */
  hedgeSlack?: number;
}

export class TransferDeadline {
  readonly minMs: number;
  readonly maxMs: number;
  private readonly slack: number;
  private readonly weight: number;
  private readonly hedgeMinMs: number;
  private readonly hedgeSlack: number;
  /** Moving averages; undefined until the first sample. */
  private msPerByte: number | undefined;
  private firstByteMs: number | undefined;

  constructor(o: TransferDeadlineOptions = {}) {
    this.minMs = o.minMs ?? 1000;
    this.maxMs = o.maxMs ?? 10_000;
    this.slack = o.slack ?? 4;
    this.weight = o.weight ?? 0.2;
    this.hedgeMinMs = o.hedgeMinMs ?? 250;
    this.hedgeSlack = o.hedgeSlack ?? 1.5;
    const ok = this.minMs > 0 && this.maxMs >= this.minMs && this.slack >= 1 && this.weight > 0 && this.weight <= 1;
    if (!(ok && this.hedgeMinMs > 0 && this.hedgeSlack >= 1)) {
      throw new DadiError('EINVAL', `transfer deadline: bad options ${JSON.stringify(o)}`);
    }
  }

  /** The deadline in ms for a request of `bytes`. */
  deadlineMs(bytes: number): number {
    if (this.msPerByte === undefined || this.firstByteMs === undefined) return this.maxMs;
    const expected = this.firstByteMs + bytes * this.msPerByte;
    return Math.round(Math.min(this.maxMs, Math.max(this.minMs, expected * this.slack)));
  }

  /**
   * When to hedge a request of `bytes` (ms); undefined when it should not be hedged: nothing
   * measured yet, or the hedge would come no earlier than the deadline itself.
   */
  hedgeMs(bytes: number): number | undefined {
    if (this.msPerByte === undefined || this.firstByteMs === undefined) return undefined;
    const expected = this.firstByteMs + bytes * this.msPerByte;
    const ms = Math.round(Math.max(this.hedgeMinMs, expected * this.hedgeSlack));
    return ms < this.deadlineMs(bytes) ? ms : undefined;
  }

  /** A transfer of `bytes` succeeded: first byte after `firstByteMs`, done after `totalMs`. */
  observe(bytes: number, firstByteMs: number, totalMs: number): void {
    if (!(bytes > 0) || !(firstByteMs >= 0) || !(totalMs >= firstByteMs)) return;
    const perByte = (totalMs - firstByteMs) / bytes;
    const w = this.weight;
    this.msPerByte = this.msPerByte === undefined ? perByte : (1 - w) * this.msPerByte + w * perByte;
    this.firstByteMs = this.firstByteMs === undefined ? firstByteMs : (1 - w) * this.firstByteMs + w * firstByteMs;
  }

  /** The current estimate, for status pages: undefined until measured. */
  estimate(): { bytesPerSecond: number; firstByteMs: number } | undefined {
    if (this.msPerByte === undefined || this.firstByteMs === undefined) return undefined;
    return {
      bytesPerSecond: this.msPerByte > 0 ? 1000 / this.msPerByte : Number.POSITIVE_INFINITY,
      firstByteMs: this.firstByteMs,
    };
  }
}
