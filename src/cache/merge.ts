// ReadMerger: source reads of one blob asked for close together go out as one read when their
// ranges are adjacent (or at most `maxGap` bytes apart), each asker getting its part. A registry
// GET costs the registry ~11.5 ms of its own (~24 ms with others in flight) beyond the round trip,
// and the ext4 mount, the metadata prefetch and file readahead ask for runs of neighbouring 4 KiB
// ranges one by one (fetch log of a cat cold start: 11 GETs at consecutive offsets within 10 ms).
//
// "Close together": reads asked before the event loop's next check phase (setImmediate) — the
// callbacks of one poll phase and their microtasks, i.e. the requests the kernel handed over
// together and what they started at once — so a read waits for nothing but the rest of the
// current turn. Not the cache's bookkeeping (blob.ts): a merged read's parts are still separate
// fetches there, each verified, persisted and retried on its own; a failed merged read fails
// every part with its error. Gap bytes are fetched and dropped (counted, see ReadMergerOptions).

import type { BlockFile } from '../blockfile/blockfile.js';
import { currentWhy, fetchLogNow, fetchLogOn, fetchWhy, logFetch } from '../util/fetch-log.js';

/**
 * Largest merged read: every asker waits for the whole of it, so what it can wait for beyond its
 * own part stays under what a GET costs alone (128 KiB: ~10 ms at 100 Mbit/s, against the
 * registry's 11.5-24 ms and a round trip). Larger ranges go alone, as a readahead window does.
 */
export const MERGE_MAX_BYTES = 128 * 1024;

export interface ReadMergerOptions {
  /** Largest gap between two ranges still read as one (bytes fetched and dropped); 0: adjacent only. */
  maxGap: number;
  /** Largest merged read in bytes (a single range larger than this still goes alone). */
  maxBytes: number;
  /** Blob key, for the fetch log's part records. */
  key: string;
  /** A merged read of `parts` ranges went out, fetching `gapBytes` nobody asked for. */
  onMerged?: (parts: number, gapBytes: number) => void;
}

interface Part {
  source: BlockFile;
  buf: Uint8Array;
  offset: number;
  /** The fetch log's reason at the time of asking (only with the log on). */
  why: string | undefined;
  resolve: (n: number) => void;
  reject: (e: unknown) => void;
}

export class ReadMerger {
  private queue: Part[] = [];
  private scheduled = false;

  constructor(private readonly opts: ReadMergerOptions) {}

  /** Read `buf.length` bytes at `offset` from `source`, with the other reads asked this turn. */
  read(source: BlockFile, buf: Uint8Array, offset: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ source, buf, offset, why: fetchLogOn ? currentWhy() : undefined, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queue = this.queue;
    this.queue = [];
    const bySource = new Map<BlockFile, Part[]>();
    for (const p of queue) {
      const list = bySource.get(p.source);
      if (list) list.push(p);
      else bySource.set(p.source, [p]);
    }
    const { maxGap, maxBytes } = this.opts;
    for (const [source, parts] of bySource) {
      parts.sort((a, b) => a.offset - b.offset);
      let run: Part[] = [];
      let start = 0;
      let end = 0;
      for (const p of parts) {
        const pEnd = p.offset + p.buf.length;
        if (run.length && p.offset - end <= maxGap && Math.max(end, pEnd) - start <= maxBytes) {
          run.push(p);
          end = Math.max(end, pEnd);
          continue;
        }
        if (run.length) this.issue(source, run, start, end);
        run = [p];
        start = p.offset;
        end = pEnd;
      }
      if (run.length) this.issue(source, run, start, end);
    }
  }

  /** One source read of [start, end) for the parts in `run` (sorted by offset). */
  private issue(source: BlockFile, run: Part[], start: number, end: number): void {
    if (run.length === 1) {
      const p = run[0]!;
      const go = () => sourceRead(source, p.buf, p.offset);
      (fetchLogOn ? fetchWhy(p.why!, go) : go()).then(p.resolve, p.reject);
      return;
    }
    const buf = Buffer.allocUnsafe(end - start);
    let asked = 0;
    let covered = start;
    for (const p of run) {
      asked += Math.max(0, p.offset + p.buf.length - Math.max(covered, p.offset));
      covered = Math.max(covered, p.offset + p.buf.length);
    }
    this.opts.onMerged?.(run.length, end - start - asked);
    let go = () => sourceRead(source, buf, start);
    if (fetchLogOn) {
      const t0 = fetchLogNow();
      for (const p of run)
        fetchWhy(p.why!, () =>
          logFetch({ k: 'part', blob: this.opts.key, off: p.offset, len: p.buf.length, t0, of: start }),
        );
      const whys = [...new Set(run.map((p) => p.why!))].sort().join('+');
      const read = go;
      go = () => fetchWhy(whys, read);
    }
    go().then(
      (n) => {
        for (const p of run) {
          // A short read (the source ended early) gives each part what it covers: the caller sees it short.
          const got = Math.max(0, Math.min(p.buf.length, n - (p.offset - start)));
          p.buf.set(buf.subarray(p.offset - start, p.offset - start + got));
          p.resolve(got);
        }
      },
      (e) => {
        for (const p of run) p.reject(e);
      },
    );
  }
}

/** source.read, with a synchronous throw as a rejection. */
function sourceRead(source: BlockFile, buf: Uint8Array, offset: number): Promise<number> {
  try {
    return source.read(buf, offset);
  } catch (e) {
    return Promise.reject(e);
  }
}
