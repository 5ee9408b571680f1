// Fetch accounting, for finding where a cold start's registry bytes go: with $DADI_FETCH_LOG=PATH,
// every registry range GET and every read and prefetch of a cached blob is appended as one JSON
// line to PATH.<pid>.jsonl, tagged with why it happened (the innermost `fetchWhy` around the call:
// ZFile/LSMT index, ext4 metadata prefetch, launch files, file or cache readahead; no tag is a
// demand read, i.e. the kernel's). bench/fetch-account.ts reads the logs. Off (and free: no async
// context tracking at all) without the variable.

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
   * fuse: a READ of the FUSE export, from reaching its handler (t0) to its reply (t1), blob ''.
   */
  k: 'get' | 'read' | 'prefetch' | 'part' | 'fuse';
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

/** Now, in ms since the epoch, sub-millisecond. */
export function fetchLogNow(): number {
  return performance.timeOrigin + performance.now();
}
