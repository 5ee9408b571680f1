// CachedBlob: a BlockFile reading one blob through the host's block cache — hits from the cache
// files, misses fetched from the source in aligned refill units, each unit fetched once however
// many reads want it. Not the persistence or eviction policy (cache.ts) nor the file format (store.ts).
//
// Read path for [offset, offset+n): walk the refill units it touches. A unit whose needed pages
// are all cached is a hit (neighbouring hits are read with one pread into the caller's buffer);
// a unit with a fetch in flight joins that fetch; the remaining units are misses, and each run of
// adjacent misses, widened to the demand grain's aligned blocks over units neither cached nor in
// flight, becomes source reads of up to maxFetchSize bytes, started at once, in parallel.
// A read awaits only its own pieces. A fetched range serves its readers from memory straight
// away and stays in the in-flight map until it is written and recorded (or dropped), so
// later readers join it instead of fetching again.
//
// Readahead (kernel-style, per blob): a few recent streams remember where their reads ended, in
// refill units. A read continues a stream when it starts in the stream's last unit or at most
// READAHEAD_GAP past it (or inside its readahead). The second time a stream moves on into a new
// unit, readahead of the next unit starts; a read that reaches the first unit of the last window
// issues the next one, twice as large, up to the `readahead` cap. (Moving on only once starts
// nothing: small files read one after another look like that, and fetching ahead of them mostly
// wastes bandwidth — the cold-start trace of python3 in docs/bench/coldstart.md.)
// Readahead fetches are ordinary fetches started after the read's own, awaited by nobody: reads
// join them like any fetch, they are persisted like any fill, and they only start while the
// cache's readahead budget allows (requests in flight, bytes waiting to be written). A reader
// that joined a readahead fetch which failed reads its range again on its own.

import { read } from 'node:fs';
import type { BlockFile } from '../blockfile/blockfile.js';
import { checkRead } from '../blockfile/range.js';
import { DadiError } from '../errors.js';
import type { BufferPool } from '../util/buffer-pool.js';
import { fetchLogNow, fetchLogOn, fetchWhy, logFetch } from '../util/fetch-log.js';
import { allSet, countSet } from './bitmap.js';
import { PAGE } from './layout.js';
import { MERGE_MAX_BYTES, ReadMerger } from './merge.js';
import { type BlobCounters, type BlobStats, newCounters } from './stats.js';
import type { Store } from './store.js';

/** Checks bytes fetched from the source before they are used or cached; false rejects them. */
export type FetchVerifier = (offset: number, data: Uint8Array) => boolean | Promise<boolean>;

export interface CachedBlobOptions {
  /**
   * Called on every range fetched from the source (refill-aligned, up to maxFetchSize bytes)
   * before any reader sees it or it is cached. A rejected range is fetched again, up to 3 tries
   * in all, then the reads fail with ECORRUPT. Verify what the range lets you (e.g. known
   * per-range digests); block CRCs that straddle ranges belong above, with `readVerified`.
   */
  verify?: FetchVerifier;
}

/** Fetch tries before ECORRUPT when the verifier keeps rejecting (the reference's 3). */
export const FETCH_TRIES = 3;

/** What a blob needs from its cache (implemented by BlockCache). */
export interface BlobHost {
  readonly refillSize: number;
  /** A read's misses are widened to aligned blocks of this size (a multiple of refillSize). */
  readonly demandGrain: number;
  readonly maxFetchSize: number;
  /** Fetches asked in the same turn whose ranges are at most this far apart go out as one source read (merge.ts). */
  readonly mergeGap: number;
  /** Largest readahead window in bytes; 0: no readahead. */
  readonly readahead: number;
  /** Where fetches take their buffers from (and give them back once finished); none: fresh ones. */
  readonly buffers?: BufferPool;
  readonly counters: BlobCounters;
  /** Whether a readahead fetch of `bytes` may start now (in-flight and pending budget). */
  readaheadAllowed(bytes: number): boolean;
  /** Run `fn` on the cache's serial mutation queue. */
  task<T>(fn: () => Promise<T>): Promise<T>;
  /** A fetch succeeded: write and record it, or drop it; then call `blob.finish(f)`. */
  persist(f: Fetch): void;
  /** The blob was read now (LRU). */
  touch(blob: BlobState): void;
  /** The last handle closed. */
  closeBlob(blob: BlobState): Promise<void>;
}

/** One source read of [offset, end), covering refill units [c0, c1). */
export class Fetch {
  buf: Buffer | undefined;
  /** The buffer it reads into (from the host's pool, if any), set from the first try on. */
  own: Buffer | undefined;
  promise!: Promise<void>;
  /** Dropped by evict(): serves the readers that already joined it, but is not cached. */
  cancelled = false;
  /** Started by readahead, not by a read. */
  readahead = false;
  /** Started by a background pull (prefetch()), not by a read. */
  background = false;
  /** The handle whose source it reads. */
  handle: CachedBlob | undefined;
  /** Resolves when the cache is done with it (recorded, dropped or failed). */
  readonly finished: Promise<void>;
  resolveFinished!: () => void;
  constructor(
    readonly blob: BlobState,
    readonly store: Store,
    readonly offset: number,
    readonly end: number,
    readonly c0: number,
    readonly c1: number,
  ) {
    this.finished = new Promise((r) => (this.resolveFinished = r));
  }
  get length(): number {
    return this.end - this.offset;
  }
}

/** Streams of sequential reads remembered per blob. */
export const READAHEAD_STREAMS = 8;
/** A read starting at most this far past a stream's end still continues it (at least one unit). */
export const READAHEAD_GAP = 256 * 1024;
/** Moves into a new unit before a stream starts readahead. */
export const READAHEAD_TRIGGER = 2;

/** One stream of sequential reads, in refill units. */
interface Stream {
  /** End (exclusive) of the furthest unit its reads touched. */
  end: number;
  /** Times a read moved it on into a new unit. */
  moves: number;
  /** End (exclusive) of the readahead issued for it. */
  ra: number;
  /** Current window in units; 0 until readahead starts. */
  win: number;
  /** A read reaching this unit issues the next window. */
  mark: number;
}

/** The state of one open blob, shared by all its handles. */
export class BlobState {
  /** The live store; replaced (and the old one retired) when the blob is evicted. */
  store: Store;
  loaded = false;
  ready: Promise<void> = Promise.resolve();
  readonly inflight = new Map<number, Fetch>();
  /** Fetches the cache is not done with yet. */
  readonly pending = new Set<Fetch>();
  readonly c = newCounters();
  handles = 0;
  closing: Promise<void> | undefined;
  /** Most recently used first. */
  private readonly streams: Stream[] = [];
  /** Refill units fetched (or being fetched) by readahead and not read since. */
  readonly raUnits = new Set<number>();
  /** Where fetches' source reads go: neighbours asked in the same turn share one. */
  private readonly merger: ReadMerger;

  constructor(
    readonly host: BlobHost,
    readonly key: string,
    readonly size: number,
    placeholder: Store,
  ) {
    this.store = placeholder;
    this.merger = new ReadMerger({
      maxGap: host.mergeGap,
      maxBytes: Math.min(host.maxFetchSize, MERGE_MAX_BYTES),
      key,
      onMerged: (parts, gap) => {
        this.add('mergedFetches', parts - 1);
        this.add('mergeGapBytes', gap);
      },
    });
  }

  add(field: keyof BlobCounters, n: number): void {
    this.c[field] += n;
    this.host.counters[field] += n;
  }

  async read(h: CachedBlob, buf: Uint8Array, offset: number): Promise<number> {
    if (!this.loaded) await this.ready;
    if (offset >= this.size || buf.length === 0) return 0;
    const n = Math.min(buf.length, this.size - offset);
    const end = offset + n;
    this.add('reads', 1);
    this.add('readBytes', n);
    if (fetchLogOn) logFetch({ k: 'read', blob: this.key, off: offset, len: n, t0: fetchLogNow() });
    this.host.touch(this);
    const R = this.host.refillSize;
    const u0 = Math.floor(offset / R);
    const u1 = Math.ceil(end / R);
    if (this.raUnits.size) this.countReadaheadHits(u0, u1);
    const ra = this.host.readahead > 0 ? this.track(u0, u1) : undefined;
    await this.readRange(h, buf, offset, end, ra);
    return n;
  }

  /** Read [offset, end) into buf (buf[0] is offset); then start readahead of units `ra`, if any. */
  private async readRange(
    h: CachedBlob,
    buf: Uint8Array,
    offset: number,
    end: number,
    ra?: [Stream, number, number],
  ): Promise<void> {
    const store = this.store;
    if (allSet(store.bitmap, Math.floor(offset / PAGE), Math.ceil(end / PAGE))) {
      // Fast path: all cached, one pread into the caller's buffer.
      if (ra) this.startReadahead(h, ...ra);
      await this.readHit(h, store, buf, offset, offset, end);
      return;
    }
    const R = this.host.refillSize;
    const maxUnits = Math.max(1, Math.floor(this.host.maxFetchSize / R));
    const work: Promise<void>[] = [];
    let hitLo = -1;
    let hitHi = -1;
    let missC0 = -1;
    let missC1 = -1;
    const flushHit = () => {
      if (hitLo < 0) return;
      work.push(this.readHit(h, store, buf, offset, hitLo, hitHi));
      hitLo = -1;
    };
    const flushMiss = () => {
      if (missC0 < 0) return;
      [missC0, missC1] = this.widen(missC0, missC1);
      for (let c = missC0; c < missC1; c += maxUnits) {
        const f = this.startFetch(h, c, Math.min(c + maxUnits, missC1));
        const lo = Math.max(offset, f.offset);
        const hi = Math.min(end, f.end);
        // A piece of the widening may lie wholly outside the read: fetched, not awaited.
        if (lo < hi) work.push(this.copyFrom(f, buf, offset, lo, hi, false));
      }
      missC0 = -1;
    };
    for (let c = Math.floor(offset / R); c * R < end; c++) {
      const lo = Math.max(offset, c * R);
      const hi = Math.min(end, (c + 1) * R);
      if (allSet(store.bitmap, Math.floor(lo / PAGE), Math.ceil(hi / PAGE))) {
        flushMiss();
        if (hitLo >= 0 && hitHi === lo) hitHi = hi;
        else {
          flushHit();
          hitLo = lo;
          hitHi = hi;
        }
        continue;
      }
      flushHit();
      const f = this.inflight.get(c);
      if (f) {
        flushMiss();
        work.push(this.copyFrom(f, buf, offset, lo, hi, true, h));
      } else if (missC0 >= 0 && missC1 === c) missC1 = c + 1;
      else {
        flushMiss();
        missC0 = c;
        missC1 = c + 1;
      }
    }
    flushHit();
    flushMiss();
    // After the read's own fetches, so that its requests go first.
    if (ra) this.startReadahead(h, ...ra);

    if (work.length === 1) await work[0];
    else {
      // Settle everything before returning, so nothing writes into `buf` after we fail.
      const results = await Promise.allSettled(work);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    }
  }

  /**
   * Units [c0, c1) of a read's misses, widened to the demand grain's aligned blocks over the
   * neighbouring units that are neither cached nor in flight (so nothing is fetched twice).
   */
  private widen(c0: number, c1: number): [number, number] {
    const R = this.host.refillSize;
    const g = this.host.demandGrain / R;
    if (g <= 1) return [c0, c1];
    const last = Math.ceil(this.size / R);
    const lo = Math.floor(c0 / g) * g;
    while (c0 > lo && this.unitFree(c0 - 1)) c0--;
    const hi = Math.min(Math.ceil(c1 / g) * g, last);
    while (c1 < hi && this.unitFree(c1)) c1++;
    return [c0, c1];
  }

  /** Whether fill unit `c` is neither cached nor being fetched. */
  private unitFree(c: number): boolean {
    return !this.inflight.has(c) && !this.unitCached(c);
  }

  /** Whether every page of fill unit `c` is cached. */
  private unitCached(c: number): boolean {
    const R = this.host.refillSize;
    return allSet(this.store.bitmap, (c * R) / PAGE, Math.ceil(Math.min((c + 1) * R, this.size) / PAGE));
  }

  /**
   * Follow the read of units [u0, u1) in the streams; returns the readahead to start (the stream
   * and units [from, to)), if the read continues a stream and reached its trigger.
   */
  private track(u0: number, u1: number): [Stream, number, number] | undefined {
    const R = this.host.refillSize;
    const gap = Math.max(1, Math.floor(READAHEAD_GAP / R));
    const streams = this.streams;
    const i = streams.findIndex((s) => u0 >= s.end - 1 && u0 <= Math.max(s.end, s.ra) + gap);
    if (i < 0) {
      streams.unshift({ end: u1, moves: 0, ra: u1, win: 0, mark: Number.POSITIVE_INFINITY });
      if (streams.length > READAHEAD_STREAMS) streams.pop();
      return undefined;
    }
    const s = streams[i]!;
    if (i > 0) {
      streams.splice(i, 1);
      streams.unshift(s);
    }
    if (u1 > s.end) {
      s.end = u1;
      s.moves++;
    }
    const maxWin = Math.max(1, Math.floor(this.host.readahead / R));
    if (s.win === 0) {
      if (s.moves < READAHEAD_TRIGGER) return undefined;
      s.win = 1;
    } else if (u1 <= s.mark) return undefined;
    else s.win = Math.min(2 * s.win, maxWin);
    const from = Math.max(s.ra, u1);
    const to = Math.min(from + s.win, Math.ceil(this.size / R));
    return from < to ? [s, from, to] : undefined;
  }

  /** Start readahead fetches of the uncached units in [from, to) for stream s, as the budget allows. */
  private startReadahead(h: CachedBlob, s: Stream, from: number, to: number): void {
    const R = this.host.refillSize;
    const maxUnits = Math.max(1, Math.floor(this.host.maxFetchSize / R));
    let c = from;
    while (c < to) {
      if (!this.unitFree(c)) {
        c++;
        continue;
      }
      let e = c + 1;
      while (e < to && e - c < maxUnits && this.unitFree(e)) e++;
      if (!this.host.readaheadAllowed(Math.min(e * R, this.size) - c * R)) break;
      const f = this.startFetch(h, c, e, true);
      for (let u = f.c0; u < f.c1; u++) this.raUnits.add(u);
      c = e;
    }
    // Nothing started (no budget): leave the trigger where it is, so the next read tries again.
    if (c === from) return;
    s.ra = c;
    s.mark = from;
  }

  private countReadaheadHits(u0: number, u1: number): void {
    const R = this.host.refillSize;
    for (let u = u0; u < u1; u++) {
      if (!this.raUnits.delete(u)) continue;
      this.add('readaheadHits', 1);
      this.add('readaheadHitBytes', Math.min((u + 1) * R, this.size) - u * R);
    }
  }

  /** Read cached bytes [lo, hi) into buf; on a cache-file error, read them from the source. */
  private async readHit(
    h: CachedBlob,
    store: Store,
    buf: Uint8Array,
    offset: number,
    lo: number,
    hi: number,
  ): Promise<void> {
    store.acquire();
    try {
      const fh = store.dataFh;
      if (!fh) throw new Error('no data file');
      // Its descriptor stays open while the store is acquired.
      const fd = fh.fd;
      let done = 0;
      const len = hi - lo;
      while (done < len) {
        const bytesRead = await pread(fd, buf, lo - offset + done, len - done, lo + done);
        if (bytesRead === 0) throw new Error('short read');
        done += bytesRead;
      }
      this.add('hitBytes', len);
      this.add('hitPages', pagesTouched(lo, hi));
      return;
    } catch {
      this.add('cacheReadErrors', 1);
    } finally {
      store.release();
    }
    const sub = buf.subarray(lo - offset, hi - offset);
    this.add('fetches', 1);
    const n = await h.source.read(sub, lo);
    if (n !== sub.length) throw shortRead(h, lo, n, sub.length);
    this.add('fetchBytes', n);
    this.add('missBytes', n);
    this.add('missPages', pagesTouched(lo, hi));
  }

  private async copyFrom(
    f: Fetch,
    buf: Uint8Array,
    offset: number,
    lo: number,
    hi: number,
    joined: boolean,
    h?: CachedBlob,
  ): Promise<void> {
    if ((f.readahead || f.background) && h) {
      try {
        await f.promise;
      } catch {
        // Nobody asked for that fetch: its failure is not this read's; read the range anew.
        await this.readRange(h, buf.subarray(lo - offset, hi - offset), lo, hi);
        return;
      }
    } else await f.promise;
    buf.set(f.buf!.subarray(lo - f.offset, hi - f.offset), lo - offset);
    this.add('missBytes', hi - lo);
    this.add('missPages', pagesTouched(lo, hi));
    if (joined) this.add('joinedBytes', hi - lo);
  }

  private startFetch(h: CachedBlob, c0: number, c1: number, readahead = false, background = false): Fetch {
    const R = this.host.refillSize;
    const f = new Fetch(this, this.store, c0 * R, Math.min(c1 * R, this.size), c0, c1);
    f.readahead = readahead;
    f.background = background;
    f.handle = h;
    for (let c = c0; c < c1; c++) this.inflight.set(c, f);
    this.pending.add(f);
    if (readahead) this.add('readaheadInflight', 1);
    f.promise = readahead ? fetchWhy('cache-readahead', () => this.runFetch(h, f)) : this.runFetch(h, f);
    f.promise.then(
      () => {
        if (readahead) this.add('readaheadInflight', -1);
        this.host.persist(f);
      },
      () => {
        if (readahead) {
          this.add('readaheadInflight', -1);
          for (let c = c0; c < c1; c++) this.raUnits.delete(c);
        }
        this.finish(f);
      },
    );
    return f;
  }

  private async runFetch(h: CachedBlob, f: Fetch): Promise<void> {
    const len = f.length;
    const buf = this.host.buffers?.take(len) ?? Buffer.allocUnsafe(len);
    f.own = buf;
    for (let attempt = 1; ; attempt++) {
      this.add('fetches', 1);
      this.add('inflight', 1);
      if (f.background) this.add('backgroundInflight', 1);
      let n: number;
      try {
        n = await this.merger.read(h.source, buf, f.offset);
      } catch (e) {
        this.add('fetchErrors', 1);
        throw e;
      } finally {
        this.add('inflight', -1);
        if (f.background) this.add('backgroundInflight', -1);
      }
      if (n !== len) {
        this.add('fetchErrors', 1);
        throw shortRead(h, f.offset, n, len);
      }
      this.add('fetchBytes', n);
      if (f.readahead) {
        this.add('readaheadFetches', 1);
        this.add('readaheadBytes', n);
      }
      if (f.background) {
        this.add('backgroundFetches', 1);
        this.add('backgroundBytes', n);
      }
      if (!h.verify || (await h.verify(f.offset, buf))) {
        f.buf = buf;
        return;
      }
      this.add('verifyFailures', 1);
      if (attempt >= FETCH_TRIES) {
        throw new DadiError(
          'ECORRUPT',
          `${h.source.name}: bytes ${f.offset}+${len} failed verification ${FETCH_TRIES} times`,
        );
      }
    }
  }

  /** Forget a fetch: out of the in-flight map, and done. Idempotent. */
  finish(f: Fetch): void {
    this.unmap(f);
    if (this.pending.delete(f)) f.resolveFinished();
    const own = f.own;
    const pool = this.host.buffers;
    if (own && pool) {
      f.own = undefined;
      // Readers that joined it copy from f.buf in the microtasks after its promise settles (and
      // none can join once it is out of the map): give the buffer back after all of them.
      setImmediate(() => pool.give(own));
    }
  }

  private unmap(f: Fetch): void {
    for (let c = f.c0; c < f.c1; c++) if (this.inflight.get(c) === f) this.inflight.delete(c);
  }

  /** Whether every page of [offset, end) is recorded as cached. */
  async holds(offset: number, end: number): Promise<boolean> {
    if (!this.loaded) await this.ready;
    const hi = Math.min(end, this.size);
    return hi <= offset || allSet(this.store.bitmap, Math.floor(offset / PAGE), Math.ceil(hi / PAGE));
  }

  /**
   * Fetch the uncached refill units of [offset, end) into the cache, as background fetches (no
   * stream tracking, no read counters), and wait until the cache is done with them. Units another
   * fetch has in flight are waited for, not fetched twice. Rejects if one of its own fetches fails.
   */
  async prefetch(h: CachedBlob, offset: number, end: number): Promise<void> {
    if (!this.loaded) await this.ready;
    const hi = Math.min(end, this.size);
    if (fetchLogOn) logFetch({ k: 'prefetch', blob: this.key, off: offset, len: hi - offset, t0: fetchLogNow() });
    const R = this.host.refillSize;
    const maxUnits = Math.max(1, Math.floor(this.host.maxFetchSize / R));
    const waits: Promise<void>[] = [];
    const joined = new Set<Fetch>();
    let c = Math.floor(offset / R);
    const last = Math.ceil(hi / R);
    while (c < last) {
      const other = this.inflight.get(c);
      if (other) {
        if (!joined.has(other)) waits.push(other.finished);
        joined.add(other);
        c++;
        continue;
      }
      if (this.unitCached(c)) {
        c++;
        continue;
      }
      let e = c + 1;
      while (e < last && e - c < maxUnits && this.unitFree(e)) e++;
      const f = this.startFetch(h, c, e, false, true);
      waits.push(f.promise.then(() => f.finished));
      c = e;
    }
    const results = await Promise.allSettled(waits);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  async evict(offset: number, length: number): Promise<void> {
    if (!this.loaded) await this.ready;
    const lo = Math.max(0, offset);
    const hi = Math.min(this.size, offset + length);
    if (hi <= lo) return;
    const store = this.store;
    const [b0, b1] = store.unmark(lo, hi);
    const R = this.host.refillSize;
    for (let c = Math.floor(lo / R); c * R < hi; c++) {
      this.raUnits.delete(c);
      const f = this.inflight.get(c);
      if (f) {
        f.cancelled = true;
        this.unmap(f);
      }
    }
    this.add('evictions', 1);
    this.add('evictedBytes', hi - lo);
    // The cleared bits reach the disk (synced) before any later fill of these pages is written.
    store.acquire();
    try {
      await this.host.task(async () => {
        if (!store.mapFh) return;
        await store.writeBitmap(b0, b1);
        await store.mapFh.datasync();
      });
    } finally {
      store.release();
    }
  }

  cachedBytes(): number {
    return Math.min(this.size, countSet(this.store.bitmap, this.store.pages) * PAGE);
  }
}

/** A blob read through the block cache. Closing it closes its source. */
export class CachedBlob implements BlockFile {
  readonly name: string;
  readonly size: number;
  private closed = false;

  constructor(
    private readonly blob: BlobState,
    readonly source: BlockFile,
    readonly verify: FetchVerifier | undefined,
  ) {
    this.name = `cache of ${source.name}`;
    this.size = blob.size;
  }

  /** The cache key (blob digest). */
  get key(): string {
    return this.blob.key;
  }

  read(buf: Uint8Array, offset: number): Promise<number> {
    try {
      checkRead(this.name, offset, this.closed);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.blob.read(this, buf, offset);
  }

  /**
   * Forget [offset, offset+length) (whole pages outward): the next read fetches it again, and an
   * in-flight fetch of it is not cached. For callers that found the bytes bad (see readVerified).
   */
  evict(offset: number, length: number): Promise<void> {
    return this.blob.evict(offset, length);
  }

  /** Bytes recorded as cached. */
  cachedBytes(): number {
    return this.blob.cachedBytes();
  }

  /** Whether every byte of [offset, offset+length) is recorded as cached. */
  holds(offset: number, length: number): Promise<boolean> {
    return this.blob.holds(offset, offset + length);
  }

  /**
   * Bring [offset, offset+length) into the cache without reading it (a background pull): only
   * uncached units are fetched, counted as background fetches; resolves once they are recorded
   * (or dropped, when the cache had no room: check with holds()).
   */
  prefetch(offset: number, length: number): Promise<void> {
    try {
      checkRead(this.name, offset, this.closed);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.blob.prefetch(this, offset, offset + length);
  }

  /** Source fetches in flight over the whole cache that reads or readahead started (not prefetch()). */
  foregroundInflight(): number {
    const c = this.blob.host.counters;
    return c.inflight - c.backgroundInflight;
  }

  /** True when every byte is cached. */
  isComplete(): boolean {
    return this.blob.cachedBytes() === this.size;
  }

  /** This blob's counters (shared by every handle of the same key). */
  stats(): BlobStats {
    return { key: this.key, size: this.size, cachedBytes: this.blob.cachedBytes(), ...this.blob.c };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Readahead this handle started may still be reading its source: let it end first.
    const mine = [...this.blob.pending].filter((f) => f.handle === this).map((f) => f.promise.catch(() => {}));
    await Promise.all(mine);
    if (--this.blob.handles === 0) await this.blob.host.closeBlob(this.blob);
    await this.source.close();
  }
}

/**
 * pread through fs.read's callback: FileHandle.read's promise machinery costs the event loop
 * ~15-20 µs more per call (4 KiB hits from the page cache, 8 at once: 20-26 -> 4-9 µs of loop time
 * each), and a cold start's hits are many small reads on the loop that also answers the kernel.
 */
function pread(fd: number, buf: Uint8Array, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, at, length, position, (e, n) => (e ? reject(e) : resolve(n)));
  });
}

function pagesTouched(lo: number, hi: number): number {
  return Math.ceil(hi / PAGE) - Math.floor(lo / PAGE);
}

function shortRead(h: CachedBlob, offset: number, n: number, len: number): DadiError {
  return new DadiError('EIO', `${h.source.name}: short read at ${offset} (${n} of ${len} bytes)`);
}
