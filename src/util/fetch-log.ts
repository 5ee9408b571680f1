// Fetch accounting, for finding where a cold start's registry bytes go: with $DADI_FETCH_LOG=PATH,
// every registry range GET and every read and prefetch of a cached blob is appended as one JSON
// line to PATH.<pid>.jsonl, tagged with why it happened (the innermost `fetchWhy` around the call:
// ZFile/LSMT index, ext4 metadata prefetch, launch files, file or cache readahead; no tag is a
// demand read, i.e. the kernel's). Also every request of the FUSE export, and where the event loop
// ran late. bench/fetch-account.ts reads the logs; bench/loop-timeline.ts lays them beside a CPU
// profile. Off (and free: no async context tracking at all, no timer) without the variable.

import { AsyncLocalStorage } from 'node:async_hooks';
import { openSync, writeSync } from 'node:fs';

const target = process.env.DADI_FETCH_LOG;
const context = target ? new AsyncLocalStorage<string>() : undefined;
let fd: number | undefined;

/** Whether the fetch log is on. */
export const fetchLogOn = context !== undefined;

/** Run `fn` with its fetches (and everything it starts) tagged `why` in the fetch log. */
export function fetchWhy<T>(why: string, fn: () => T): T {
  return context ? context.run(why, fn) : fn();
}

/** The tag of the current call ('demand' outside any fetchWhy). */
export function currentWhy(): string {
  return context?.getStore() ?? 'demand';
}

export interface FetchLogRecord {
  /**
   * get: a registry range GET; read/prefetch: a read or prefetch of a cached blob; part: one range
   * of a merged GET (cache/merge.ts), tagged with its own reason (the GET carries them all, joined by +);
   * fuse: a READ of the FUSE export, from reaching its handler (t0) to its reply (t1), blob '';
   * fuse records of other requests than READ name the opcode in blob (`op:26`, fuse/abi.ts OP).
   * lag: the event loop ran a 1 ms timer late, from when it was due (t0) to when it ran (t1), blob ''
   * (the daemon's thread was busy or descheduled: every FUSE request arriving meanwhile waited).
   * clock: written once, `off` is the monotonic clock in µs at t0 (a `node --cpu-prof` profile's
   * clock: bench/loop-timeline.ts lines the two up).
   */
  k: 'get' | 'read' | 'prefetch' | 'part' | 'fuse' | 'lag' | 'clock';
  /** Blob digest (sha256:…). */
  blob: string;
  off: number;
  len: number;
  /** Start and end, ms since the epoch (end: when it completed; reads log at their start). */
  t0: number;
  t1?: number;
  /** part: where the merged GET it rode in starts. */
  of?: number;
}

/** Append a record, tagged with the current why. */
export function logFetch(rec: FetchLogRecord): void {
  if (!context) return;
  try {
    fd ??= openSync(`${target}.${process.pid}.jsonl`, 'a');
    writeSync(fd, `${JSON.stringify({ ...rec, why: currentWhy() })}\n`);
  } catch {
    // Diagnostics only: never fail a read over its log.
  }
}

/** Timers later than this are logged as `lag` records. */
const LAG_MS = 2;

/**
 * A 1 ms timer that logs how late it ran, while the process has other work (unref'd): where the
 * event loop was blocked, the kernel's FUSE requests waited too. Only with the log on.
 */
function watchLag(): void {
  let due = performance.now() + 1;
  const tick = () => {
    const now = performance.now();
    if (now - due >= LAG_MS) {
      logFetch({
        k: 'lag',
        blob: '',
        off: 0,
        len: 0,
        t0: performance.timeOrigin + due,
        t1: performance.timeOrigin + now,
      });
    }
    due = now + 1;
    setTimeout(tick, 1).unref();
  };
  setTimeout(tick, 1).unref();
  logFetch({ k: 'clock', blob: '', off: Number(process.hrtime.bigint() / 1000n), len: 0, t0: fetchLogNow() });
}
if (context) watchLag();

/** Now, in ms since the epoch, sub-millisecond. */
export function fetchLogNow(): number {
  return performance.timeOrigin + performance.now();
}
