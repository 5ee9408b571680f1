// BlockCache: the host's persistent cache of remote blob bytes, one directory shared by every
// image, keyed by blob digest. Owns the policy: when fetched ranges are written and recorded,
// capacity and free-disk limits, LRU eviction of whole blobs, start-up scan, ls/gc/clear.
// Not the read path (blob.ts) nor the file format (layout.ts, store.ts).
//
// Every mutation of the cache files runs on one serial queue (the "writer"): fills, evictions,
// blob loads and closes. Completed fetches waiting at its head are written as one batch —
// write each range, fdatasync each data file once, then record the pages in memory and in the
// map files — so a page is recorded only after its bytes are durable, one sync covers many
// fills, and at most one libuv thread is busy with cache writes while hit reads use the others.
//
// Eviction is LRU over whole blobs, as the reference's file cache: Node has no
// fallocate(PUNCH_HOLE), so space inside a blob file cannot be given back; dropping the pair of
// files can. A blob evicted while open gets a fresh empty store; reads in progress keep reading
// the old (unlinked) files, whose space is freed when they finish, and later reads refetch.
// Limits are enforced before each write, so usage stays at or under the capacity (plus file-system
// metadata, well under one refill unit); a blob alone larger than the capacity keeps what fits.
//
// Several processes may share the directory without ever serving wrong bytes (files are paired by
// a nonce, pages recorded only after their data is durable), but each keeps its own usage count
// and may drop pages another recorded: run one cache owner per directory for exact accounting.

import type { Stats } from 'node:fs';
import { mkdir, open, readdir, stat, statfs, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import type { BufferPool } from '../util/buffer-pool.js';
import { countSet } from './bitmap.js';
import { BlobState, CachedBlob, type CachedBlobOptions, type Fetch } from './blob.js';
import {
  checkKey,
  dataName,
  decodeMapHeader,
  MAP_HEADER_SIZE,
  mapFileSize,
  mapName,
  PAGE,
  pageCount,
  parseName,
} from './layout.js';
import { type BlobCounters, type CacheStats, newCounters } from './stats.js';
import { Store, type StorePaths, unlinkQuiet, writeAll } from './store.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

export interface BlockCacheOptions {
  /** Bytes the cache files may occupy. Default 4 GiB (the reference's cacheSizeGB). */
  capacity?: number;
  /**
   * Fill unit: a power of two, ≥ 4 KiB; every fetch is aligned to it. Default 4 KiB (a page, the
   * cache's own grain): prefetchers (ext4 metadata, launch files, ZFile indexes) ask for exact
   * compressed ranges, and a larger unit only fetched bytes around them nobody read (fetch log of
   * a python cold start: 0.27 MB of 10.8 at 16 KiB).
   */
  refillSize?: number;
  /**
   * What a read's misses are widened to: aligned blocks of this size (a power of two ≥ the fill
   * unit), over the units that are neither cached nor in flight. Default 8 KiB: a ZFile read asks
   * for exactly the compressed blocks it decodes, and the next file a process opens is often the
   * next one on disk (python's imports from one package); reads fetched at 4 KiB made ~16 more
   * dependent round trips of python's cold start than at 16 KiB, for 0.2 MB less. Since the ext4
   * prefetch fetches a file's neighbours on its first read (ext4-prefetch.ts NEIGHBOUR_FILES),
   * 8 KiB blocks fetch ~0.1 MB less than 16 KiB for about the same round trips.
   */
  demandGrain?: number;
  /** Largest single source read when adjacent misses are coalesced. Default max(1 MiB, refillSize). */
  maxFetchSize?: number;
  /**
   * Fetches asked in the same turn of the event loop whose ranges are at most this many bytes
   * apart go out as one source read (merge.ts); the gap is fetched and dropped. Default
   * DEFAULT_MERGE_GAP; 0: adjacent ranges only.
   */
  mergeGap?: number;
  /** Keep at least this much free on the file system. Default 1 GiB (the reference's floor). */
  diskFloor?: number;
  /** Fetched bytes that may wait to be written; beyond it, new fetches are not cached. Default 64 MiB. */
  maxPendingBytes?: number;
  /**
   * Sequential readahead: the largest window in bytes (rounded down to refill units, at least
   * one), fetched ahead of reads that continue a stream; 0 turns it off. Default 1 MiB.
   */
  readahead?: number;
  /**
   * Buffers for fetched ranges, reused once the cache is done with a fetch (written or dropped)
   * instead of a fresh one each: a process filling many chunks (the P2P root) otherwise
   * page-faults every fetch's buffer in and leaves the garbage collector the rest. Default none.
   */
  buffers?: BufferPool;
  /** Free-space probe (tests inject one). Default: fs.statfs. */
  statfs?: (dir: string) => Promise<{ bavail: number; bsize: number }>;
}

/** One blob known to the cache, open or not. */
interface Entry {
  readonly key: string;
  readonly paths: StorePaths;
  /** Bytes its files occupy (allocated blocks), as last measured or estimated. */
  allocated: number;
  /** Whether its files (may) exist. */
  onDisk: boolean;
  lastUse: number;
  persistedUse: number;
  blob: BlobState | undefined;
  /** Stores recording into its files (normally at most one). */
  readonly stores: Set<Store>;
}

export interface CacheEntryInfo {
  key: string;
  /** Blob size in bytes. */
  size: number;
  /** Bytes recorded as cached. */
  cachedBytes: number;
  /** Bytes its files occupy on disk. */
  allocatedBytes: number;
  lastUse: Date;
  open: boolean;
}

export interface GcResult {
  evicted: string[];
  freedBytes: number;
  usage: number;
}

type Job = { kind: 'fill'; f: Fetch } | { kind: 'task'; run: () => Promise<void> };

/** Entries found unpaired or half-created are left alone this long (another process may be creating them). */
const ORPHAN_AGE_MS = 60_000;
/** Default fill unit (see BlockCacheOptions.refillSize). */
export const DEFAULT_REFILL_SIZE = 4 * 1024;
/** Default grain of a read's misses (see BlockCacheOptions.demandGrain). */
export const DEFAULT_DEMAND_GRAIN = 8 * 1024;
/** Default gap merged fetches may span (see BlockCacheOptions.mergeGap). */
export const DEFAULT_MERGE_GAP = 0;
/**
 * Readahead fetches in flight at once, over the whole cache: a quarter of the registry pool's 16
 * connections, the rest free for demand reads.
 */
export const READAHEAD_MAX_REQUESTS = 4;
/** How often the LRU time of a blob read only from the cache is written (as the map file's mtime). */
const TOUCH_PERSIST_MS = 60_000;
const STATFS_MAX_AGE_MS = 1000;

export class BlockCache {
  readonly capacity: number;
  readonly refillSize: number;
  readonly demandGrain: number;
  readonly maxFetchSize: number;
  readonly mergeGap: number;
  readonly diskFloor: number;
  readonly maxPendingBytes: number;
  readonly readahead: number;
  readonly buffers: BufferPool | undefined;
  /** Evictions for room go down to this (the reference's water mark). */
  readonly lowWater: number;
  readonly counters: BlobCounters = newCounters();
  private readonly statfsFn: (dir: string) => Promise<{ bavail: number; bsize: number }>;
  /** LRU order: least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private usageBytes = 0;
  private pendingBytes = 0;
  private blobEvictions = 0;
  private freeEstimate = 0;
  private statfsAt = 0;
  private queue: Job[] = [];
  private pumping = false;
  private closed = false;

  private constructor(
    readonly dir: string,
    opts: BlockCacheOptions,
  ) {
    this.capacity = opts.capacity ?? 4 * GiB;
    this.refillSize = opts.refillSize ?? DEFAULT_REFILL_SIZE;
    if (!isPow2(this.refillSize) || this.refillSize < PAGE) {
      throw new DadiError('EINVAL', `cache refill size ${this.refillSize} is not a power of two ≥ ${PAGE}`);
    }
    this.demandGrain = Math.max(this.refillSize, opts.demandGrain ?? DEFAULT_DEMAND_GRAIN);
    if (!isPow2(this.demandGrain)) {
      throw new DadiError('EINVAL', `cache demand grain ${this.demandGrain} is not a power of two`);
    }
    this.maxFetchSize = Math.max(this.refillSize, opts.maxFetchSize ?? MiB);
    this.mergeGap = opts.mergeGap ?? DEFAULT_MERGE_GAP;
    if (!(Number.isSafeInteger(this.mergeGap) && this.mergeGap >= 0))
      throw new DadiError('EINVAL', `cache merge gap ${this.mergeGap} is not a byte count`);
    this.diskFloor = opts.diskFloor ?? GiB;
    this.maxPendingBytes = opts.maxPendingBytes ?? 64 * MiB;
    const ra = opts.readahead ?? MiB;
    if (!(ra >= 0 && Number.isSafeInteger(ra)))
      throw new DadiError('EINVAL', `cache readahead ${ra} is not a byte count`);
    this.readahead = ra === 0 ? 0 : Math.max(1, Math.floor(ra / this.refillSize)) * this.refillSize;
    this.lowWater = Math.max(0.9 * this.capacity, this.capacity - 50 * GiB);
    this.buffers = opts.buffers;
    this.statfsFn = opts.statfs ?? ((d) => statfs(d));
  }

  /**
   * Open (creating if needed) the cache in `dir`: scans it to rebuild the LRU order and usage,
   * drops leftovers of interrupted creations, and evicts down to the capacity.
   *
   * @example
   *   const cache = await BlockCache.open('/var/lib/dadi/cache');
   *   const blob = cache.open('sha256:ab…', remoteBlob);
   *   await blob.read(buf, 0);
   */
  static async open(dir: string, opts: BlockCacheOptions = {}): Promise<BlockCache> {
    const cache = new BlockCache(dir, opts);
    try {
      await mkdir(dir, { recursive: true });
      await cache.scan();
    } catch (e) {
      throw new DadiError('EIO', `${dir}: cannot open the block cache: ${(e as Error).message}`, { cause: e });
    }
    if (cache.usageBytes > cache.capacity) await cache.gc(cache.lowWater);
    return cache;
  }

  private async scan(): Promise<void> {
    const now = Date.now();
    const found = new Map<string, { data?: Stats; map?: Stats }>();
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        const st = await stat(path).catch(() => undefined);
        if (st && now - st.mtimeMs > ORPHAN_AGE_MS) await unlinkQuiet(path);
        continue;
      }
      const p = parseName(name);
      if (!p) continue;
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      const slot = found.get(p.key) ?? {};
      slot[p.kind] = st;
      found.set(p.key, slot);
    }
    const list: Entry[] = [];
    for (const [key, { data, map }] of found) {
      if (!data || !map) {
        const st = (data ?? map)!;
        if (now - st.mtimeMs > ORPHAN_AGE_MS) await unlinkQuiet(join(this.dir, data ? dataName(key) : mapName(key)));
        continue;
      }
      const e = this.newEntry(key);
      e.allocated = (data.blocks + map.blocks) * 512;
      e.onDisk = true;
      e.lastUse = e.persistedUse = map.mtimeMs;
      list.push(e);
    }
    list.sort((a, b) => a.lastUse - b.lastUse);
    for (const e of list) {
      this.entries.set(e.key, e);
      this.usageBytes += e.allocated;
    }
  }

  private newEntry(key: string): Entry {
    return {
      key,
      paths: { key, dataPath: join(this.dir, dataName(key)), mapPath: join(this.dir, mapName(key)) },
      allocated: 0,
      onDisk: false,
      lastUse: Date.now(),
      persistedUse: 0,
      blob: undefined,
      stores: new Set(),
    };
  }

  /** Bytes the cache files occupy, as last measured (allocated blocks). */
  get usage(): number {
    return this.usageBytes;
  }

  /**
   * A BlockFile reading `source` (the blob with digest `key`) through the cache. Handles of the
   * same key share state; the sizes must agree. Closing the handle closes `source`.
   */
  open(key: string, source: BlockFile, opts: CachedBlobOptions = {}): CachedBlob {
    if (this.closed) throw new DadiError('EINVAL', `${this.dir}: block cache is closed`);
    checkKey(key);
    let e = this.entries.get(key);
    if (!e) {
      e = this.newEntry(key);
      this.entries.set(key, e);
    }
    let blob = e.blob;
    if (blob && !blob.closing) {
      if (blob.size !== source.size) {
        throw new DadiError(
          'EINVAL',
          `${source.name}: size ${source.size} differs from the open blob ${key} (${blob.size} bytes)`,
        );
      }
    } else {
      const entry = e;
      const prev = blob?.closing ?? Promise.resolve();
      const b = new BlobState(this, key, source.size, new Store(entry.paths, source.size));
      blob = b;
      entry.blob = b;
      b.ready = prev.then(() => this.task(() => this.load(entry, b)));
    }
    blob.handles++;
    return new CachedBlob(blob, source, opts.verify);
  }

  private async load(e: Entry, blob: BlobState): Promise<void> {
    let store: Store;
    try {
      const r = await Store.load(e.paths, blob.size);
      store = r.store;
      if (r.status === 'loaded') {
        e.onDisk = true;
        await this.measure(e, store);
      } else if (r.status === 'reset') this.dropUsage(e);
    } catch {
      store = new Store(e.paths, blob.size);
      store.broken = true;
      this.counters.persistErrors++;
    }
    this.register(e, store);
    blob.store = store;
    blob.loaded = true;
  }

  private register(e: Entry, store: Store): void {
    e.stores.add(store);
    store.whenRetired(() => e.stores.delete(store));
  }

  /** Run `fn` on the serial mutation queue. */
  task<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        kind: 'task',
        run: async () => {
          try {
            resolve(await fn());
          } catch (e) {
            reject(e);
          }
        },
      });
      void this.pump();
    });
  }

  /** Called by a blob when a fetch succeeded. */
  persist(f: Fetch): void {
    const s = f.store;
    if (f.cancelled || s.retired || s.broken || this.closed) {
      f.blob.finish(f);
      return;
    }
    if (this.pendingBytes + f.length > this.maxPendingBytes) {
      f.blob.add('persistSkipped', 1);
      f.blob.finish(f);
      return;
    }
    this.pendingBytes += f.length;
    this.queue.push({ kind: 'fill', f });
    void this.pump();
  }

  readaheadAllowed(bytes: number): boolean {
    return (
      !this.closed &&
      this.counters.readaheadInflight < READAHEAD_MAX_REQUESTS &&
      this.pendingBytes + bytes <= this.maxPendingBytes / 2
    );
  }

  touch(blob: BlobState): void {
    const e = this.entries.get(blob.key);
    if (!e) return;
    const now = Date.now();
    e.lastUse = now;
    this.entries.delete(e.key);
    this.entries.set(e.key, e);
    if (e.onDisk && now - e.persistedUse > TOUCH_PERSIST_MS) {
      e.persistedUse = now;
      void this.task(() => this.persistUse(e));
    }
  }

  private async persistUse(e: Entry): Promise<void> {
    if (!e.onDisk) return;
    const t = new Date(e.lastUse);
    await utimes(e.paths.mapPath, t, t).catch(() => {});
  }

  closeBlob(blob: BlobState): Promise<void> {
    blob.closing = (async () => {
      // Let every fetch reach the queue first, so its fill is recorded before the store closes.
      while (blob.pending.size) await Promise.all([...blob.pending].map((f) => f.finished));
      await this.task(async () => {
        const e = this.entries.get(blob.key);
        blob.store.retire();
        if (!e || e.blob !== blob) return;
        e.blob = undefined;
        await this.persistUse(e);
        if (!e.onDisk) this.entries.delete(e.key);
      });
    })();
    return blob.closing;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length) {
        const job = this.queue.shift()!;
        if (job.kind === 'task') {
          await job.run();
          continue;
        }
        const batch = [job.f];
        while (this.queue.length && this.queue[0]!.kind === 'fill') batch.push((this.queue.shift() as { f: Fetch }).f);
        await this.writeBatch(batch);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Write fetched ranges, sync once per data file, then record their pages. Never throws. */
  private async writeBatch(fills: Fetch[]): Promise<void> {
    const written: Array<{ f: Fetch; runs: Array<[number, number]> }> = [];
    const stores = new Set<Store>();
    try {
      for (const f of fills) {
        const s = f.store;
        if (f.cancelled || s.retired || s.broken) continue;
        const e = this.entries.get(f.blob.key);
        if (!e) continue;
        const runs = s.uncachedRuns(f.offset, f.end);
        const bytes = runs.reduce((n, [a, b]) => n + b - a, 0);
        if (bytes === 0) continue;
        // A new pair of files also takes the map and the data trailer's page.
        const overhead = s.hasFiles ? 0 : mapFileSize(s.size) + PAGE;
        if (!(await this.ensureRoom(bytes + overhead, e))) {
          f.blob.add('persistSkipped', 1);
          continue;
        }
        if (f.cancelled || s.retired) continue;
        if (!s.hasFiles) {
          try {
            await s.create();
          } catch {
            s.broken = true;
            f.blob.add('persistErrors', 1);
            continue;
          }
          e.onDisk = true;
          e.persistedUse = Date.now();
          this.usageBytes += overhead;
          e.allocated += overhead;
          this.freeEstimate -= overhead;
          if (f.cancelled || s.retired) continue;
        }
        if (!stores.has(s)) {
          s.acquire();
          stores.add(s);
        }
        try {
          for (const [a, b] of runs) await writeAll(s.dataFh!, f.buf!.subarray(a - f.offset, b - f.offset), a);
        } catch (err) {
          f.blob.add('persistErrors', 1);
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
            this.statfsAt = 0;
            await this.evictBytes(Math.max(this.diskFloor, 16 * this.refillSize), e);
          }
          continue;
        }
        this.usageBytes += bytes;
        e.allocated += bytes;
        this.freeEstimate -= bytes;
        written.push({ f, runs });
      }
      const synced = new Set<Store>();
      for (const s of stores) {
        try {
          await s.dataFh!.datasync();
          synced.add(s);
        } catch {
          this.counters.persistErrors++;
        }
      }
      const dirty = new Map<Store, [number, number]>();
      for (const { f, runs } of written) {
        const s = f.store;
        if (!synced.has(s) || f.cancelled || s.retired) continue;
        for (const [a, b] of runs) {
          const [b0, b1] = s.mark(a, b);
          const d = dirty.get(s);
          dirty.set(s, d ? [Math.min(d[0], b0), Math.max(d[1], b1)] : [b0, b1]);
          f.blob.add('persistedBytes', b - a);
        }
      }
      for (const [s, [b0, b1]] of dirty) {
        await s.writeBitmap(b0, b1).catch(() => this.counters.persistErrors++);
      }
      for (const s of stores) {
        const e = this.entries.get(s.paths.key);
        if (e && !s.retired) await this.measure(e, s).catch(() => {});
      }
    } catch {
      this.counters.persistErrors++;
    } finally {
      for (const s of stores) s.release();
      for (const f of fills) {
        this.pendingBytes -= f.length;
        f.blob.finish(f);
      }
    }
  }

  /** Set an entry's allocation from its files' allocated blocks. */
  private async measure(e: Entry, s: Store): Promise<void> {
    if (!s.dataFh || !s.mapFh) return;
    const [d, m] = await Promise.all([s.dataFh.stat(), s.mapFh.stat()]);
    const alloc = (d.blocks + m.blocks) * 512;
    this.usageBytes += alloc - e.allocated;
    e.allocated = alloc;
  }

  private dropUsage(e: Entry): void {
    this.usageBytes -= e.allocated;
    this.freeEstimate += e.allocated;
    e.allocated = 0;
    e.onDisk = false;
  }

  /** Make room for `bytes` more, evicting least recently used blobs other than `keep`. */
  private async ensureRoom(bytes: number, keep: Entry): Promise<boolean> {
    if (this.usageBytes + bytes > this.capacity) {
      const target = Math.min(this.lowWater, this.capacity - bytes);
      for (const e of [...this.entries.values()]) {
        if (this.usageBytes <= target) break;
        if (e !== keep && e.onDisk) await this.evictNow(e);
      }
      if (this.usageBytes + bytes > this.capacity) return false;
    }
    if (this.diskFloor > 0) {
      let free = await this.diskFree(bytes);
      if (free - bytes < this.diskFloor) {
        free += await this.evictBytes(this.diskFloor - (free - bytes), keep);
        this.statfsAt = 0;
        if (free - bytes < this.diskFloor) return false;
      }
    }
    return true;
  }

  /** Evict least recently used blobs (not `keep`) until `need` bytes are freed; returns bytes freed. */
  private async evictBytes(need: number, keep: Entry | undefined): Promise<number> {
    let freed = 0;
    for (const e of [...this.entries.values()]) {
      if (freed >= need) break;
      if (e === keep || !e.onDisk) continue;
      freed += e.allocated;
      await this.evictNow(e);
    }
    return freed;
  }

  /** Free bytes on the cache's file system: measured at most once a second, estimated between. */
  private async diskFree(bytes: number): Promise<number> {
    const now = Date.now();
    if (now - this.statfsAt > STATFS_MAX_AGE_MS || this.freeEstimate - bytes < this.diskFloor) {
      try {
        const s = await this.statfsFn(this.dir);
        this.freeEstimate = s.bavail * s.bsize;
        this.statfsAt = now;
      } catch {
        return Number.POSITIVE_INFINITY;
      }
    }
    return this.freeEstimate;
  }

  /** Drop a blob's files (on the queue). An open blob continues with a fresh empty store. */
  private async evictNow(e: Entry): Promise<void> {
    for (const s of [...e.stores]) s.retire();
    const blob = e.blob;
    const bytes = e.allocated;
    if (blob) {
      const s = new Store(e.paths, blob.size);
      this.register(e, s);
      blob.store = s;
      blob.raUnits.clear();
      blob.add('evictions', 1);
      blob.add('evictedBytes', bytes);
    } else {
      this.counters.evictions++;
      this.counters.evictedBytes += bytes;
    }
    try {
      // Map first: a crash in between leaves an orphan data file, removed at start-up.
      await unlinkQuiet(e.paths.mapPath);
      await unlinkQuiet(e.paths.dataPath);
    } catch {
      this.counters.persistErrors++;
    }
    this.blobEvictions++;
    this.dropUsage(e);
    if (!blob) this.entries.delete(e.key);
  }

  /**
   * Evict least recently used blobs (open ones too: they refetch) until usage ≤ `target`
   * (default: the low-water mark, max(90% of capacity, capacity − 50 GiB)).
   */
  gc(target = this.lowWater): Promise<GcResult> {
    return this.task(async () => {
      const evicted: string[] = [];
      let freedBytes = 0;
      for (const e of [...this.entries.values()]) {
        if (this.usageBytes <= target) break;
        if (!e.onDisk) continue;
        freedBytes += e.allocated;
        evicted.push(e.key);
        await this.evictNow(e);
      }
      return { evicted, freedBytes, usage: this.usageBytes };
    });
  }

  /** Evict everything, and remove leftover temporary files. */
  async clear(): Promise<GcResult> {
    const r = await this.gc(-1);
    await this.task(async () => {
      for (const name of await readdir(this.dir)) {
        if (name.endsWith('.tmp') && parseName(name.replace(/\.\d+\.[0-9a-f]+\.tmp$/, ''))) {
          await unlink(join(this.dir, name)).catch(() => {});
        }
      }
    });
    return r;
  }

  /** The cached blobs, least recently used first. */
  async ls(): Promise<CacheEntryInfo[]> {
    const out: CacheEntryInfo[] = [];
    for (const e of [...this.entries.values()]) {
      if (!e.onDisk) continue;
      const info = { key: e.key, allocatedBytes: e.allocated, lastUse: new Date(e.lastUse), open: !!e.blob };
      const b = e.blob;
      if (b?.loaded) {
        out.push({ ...info, size: b.size, cachedBytes: b.cachedBytes() });
        continue;
      }
      const m = await readMap(e.paths.mapPath);
      if (m) out.push({ ...info, ...m });
    }
    return out;
  }

  /** Counters summed over all blobs, with usage. */
  stats(): CacheStats {
    let openBlobs = 0;
    for (const e of this.entries.values()) if (e.blob) openBlobs++;
    return {
      ...this.counters,
      dir: this.dir,
      capacity: this.capacity,
      usage: this.usageBytes,
      entries: [...this.entries.values()].filter((e) => e.onDisk).length,
      openBlobs,
      blobEvictions: this.blobEvictions,
      pendingBytes: this.pendingBytes,
    };
  }

  /** Wait until every fetch so far is written and recorded (or dropped). */
  async flush(): Promise<void> {
    for (;;) {
      const pending: Promise<void>[] = [];
      for (const e of this.entries.values()) if (e.blob) for (const f of e.blob.pending) pending.push(f.finished);
      await Promise.all(pending);
      // Runs after every job queued before it, including those the fetches above queued.
      await this.task(async () => {});
      if (!pending.length) return;
    }
  }

  /** Flush, then close every file. Handles still open keep reading, from their sources. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await this.task(async () => {
      for (const e of this.entries.values()) {
        if (e.blob) await this.persistUse(e);
        for (const s of [...e.stores]) s.retire();
      }
    });
  }
}

async function readMap(path: string): Promise<{ size: number; cachedBytes: number } | undefined> {
  try {
    const fh = await open(path, 'r');
    try {
      const hb = Buffer.alloc(MAP_HEADER_SIZE);
      await fh.read(hb, 0, MAP_HEADER_SIZE, 0);
      const h = decodeMapHeader(hb);
      if (!h) return undefined;
      const pages = pageCount(h.size);
      const bm = Buffer.alloc(Math.ceil(pages / 8));
      await fh.read(bm, 0, bm.length, MAP_HEADER_SIZE);
      return { size: h.size, cachedBytes: Math.min(h.size, countSet(bm, pages) * PAGE) };
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

function isPow2(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
