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
// Hedging: a request to a peer that has gone silent for `hedgeMs` (the expected duration times a
// smaller slack, never below `hedgeMinMs`) is sent a second time to the next hop up (schedule.ts
// ChunkFetch.hedge), and the first good answer wins. Silence is the peer's, not the request's,
// and hedge.ts HedgeGate decides (heartbeats, caps, back-off, the root's budget): hedging on the
// request's own wait fed on itself in a synchronized start, where a live parent waiting on its
// own parent looks the same (bench/scale, fault-free fan-out 8: 1.3 → 4.7 s, 16: 1.6 → 8.1 s).
// With the gate, 5% of 1,000 hosts dying at the median chunk arrival: all started 2.97 → 1.07 s
// (fault-free 0.93 s), no hedge in any fault-free run.
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
   * When to hedge a request of `bytes` (ms): the floor until a transfer was measured (what counts
   * is the peer's silence, hedge.ts: a live peer sends progress or heartbeats, so a first request
   * to a peer that died is rescued too); undefined when the hedge would come no earlier than the
   * deadline itself.
   */
  hedgeMs(bytes: number): number | undefined {
    if (this.msPerByte === undefined || this.firstByteMs === undefined) {
      return this.hedgeMinMs < this.deadlineMs(bytes) ? this.hedgeMinMs : undefined;
    }
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
