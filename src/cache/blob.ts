// CachedBlob: a BlockFile reading one blob through the host's block cache — hits from the cache
// files, misses fetched from the source in aligned refill units, each unit fetched once however
// many reads want it. Not the persistence or eviction policy (cache.ts) nor the file format (store.ts).
//
// Read path for [offset, offset+n): walk the refill units it touches. A unit whose needed pages
// are all cached is a hit (neighbouring hits are read with one pread into the caller's buffer);
// a unit with a fetch in flight joins that fetch; the remaining units are misses, and each run of
// adjacent misses becomes source reads of up to maxFetchSize bytes, started at once, in parallel.
// A read awaits only its own pieces. A fetched range serves its readers from memory straight
// away and stays in the in-flight map until it is written and recorded (or dropped), so
// later readers join it instead of fetching again.

import type { BlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import { allSet, countSet } from './bitmap.js';
import { PAGE } from './layout.js';
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
  readonly maxFetchSize: number;
  readonly counters: BlobCounters;
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
  promise!: Promise<void>;
  /** Dropped by evict(): serves the readers that already joined it, but is not cached. */
  cancelled = false;
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

  constructor(
    readonly host: BlobHost,
    readonly key: string,
    readonly size: number,
    placeholder: Store,
  ) {
    this.store = placeholder;
  }

  add(field: keyof BlobCounters, n: number): void {
    this.c[field] += n;
    this.host.counters[field] += n;
  }

  async read(h: CachedBlob, buf: Uint8Array, offset: number): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new DadiError('ERANGE', `${h.name}: bad read offset ${offset}`);
    }
    if (!this.loaded) await this.ready;
    if (offset >= this.size || buf.length === 0) return 0;
    const n = Math.min(buf.length, this.size - offset);
    const end = offset + n;
    this.add('reads', 1);
    this.add('readBytes', n);
    this.host.touch(this);

    const store = this.store;
    if (allSet(store.bitmap, Math.floor(offset / PAGE), Math.ceil(end / PAGE))) {
      // Fast path: all cached, one pread into the caller's buffer.
      await this.readHit(h, store, buf, offset, offset, end);
      return n;
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
      for (let c = missC0; c < missC1; c += maxUnits) {
        const f = this.startFetch(h, c, Math.min(c + maxUnits, missC1));
        work.push(this.copyFrom(f, buf, offset, Math.max(offset, f.offset), Math.min(end, f.end), false));
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
        work.push(this.copyFrom(f, buf, offset, lo, hi, true));
      } else if (missC0 >= 0 && missC1 === c) missC1 = c + 1;
      else {
        flushMiss();
        missC0 = c;
        missC1 = c + 1;
      }
    }
    flushHit();
    flushMiss();

    if (work.length === 1) await work[0];
    else {
      // Settle everything before returning, so nothing writes into `buf` after we fail.
      const results = await Promise.allSettled(work);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    }
    return n;
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
      let done = 0;
      const len = hi - lo;
      while (done < len) {
        const { bytesRead } = await fh.read(buf, lo - offset + done, len - done, lo + done);
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
  ): Promise<void> {
    await f.promise;
    buf.set(f.buf!.subarray(lo - f.offset, hi - f.offset), lo - offset);
    this.add('missBytes', hi - lo);
    this.add('missPages', pagesTouched(lo, hi));
    if (joined) this.add('joinedBytes', hi - lo);
  }

  private startFetch(h: CachedBlob, c0: number, c1: number): Fetch {
    const R = this.host.refillSize;
    const f = new Fetch(this, this.store, c0 * R, Math.min(c1 * R, this.size), c0, c1);
    for (let c = c0; c < c1; c++) this.inflight.set(c, f);
    this.pending.add(f);
    f.promise = this.runFetch(h, f);
    f.promise.then(
      () => this.host.persist(f),
      () => this.finish(f),
    );
    return f;
  }

  private async runFetch(h: CachedBlob, f: Fetch): Promise<void> {
    const len = f.length;
    const buf = Buffer.allocUnsafe(len);
    for (let attempt = 1; ; attempt++) {
      this.add('fetches', 1);
      this.add('inflight', 1);
      let n: number;
      try {
        n = await h.source.read(buf, f.offset);
      } catch (e) {
        this.add('fetchErrors', 1);
        throw e;
      } finally {
        this.add('inflight', -1);
      }
      if (n !== len) {
        this.add('fetchErrors', 1);
        throw shortRead(h, f.offset, n, len);
      }
      this.add('fetchBytes', n);
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
  }

  private unmap(f: Fetch): void {
    for (let c = f.c0; c < f.c1; c++) if (this.inflight.get(c) === f) this.inflight.delete(c);
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
    if (this.closed) return Promise.reject(new DadiError('EINVAL', `${this.name}: read after close`));
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
    if (--this.blob.handles === 0) await this.blob.host.closeBlob(this.blob);
    await this.source.close();
  }
}

function pagesTouched(lo: number, hi: number): number {
  return Math.ceil(hi / PAGE) - Math.floor(lo / PAGE);
}

function shortRead(h: CachedBlob, offset: number, n: number, len: number): DadiError {
  return new DadiError('EIO', `${h.source.name}: short read at ${offset} (${n} of ${len} bytes)`);
}
