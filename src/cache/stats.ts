// Counters of the block cache, per blob and summed per cache: plain numbers, snapshot as plain
// objects for metrics. Not a metrics exporter.

export interface BlobCounters {
  /** read() calls and the bytes they returned. */
  reads: number;
  readBytes: number;
  /** Bytes (and pages touched) served from the cache files. */
  hitBytes: number;
  hitPages: number;
  /** Bytes (and pages touched) served from a source fetch, new or already in flight. */
  missBytes: number;
  missPages: number;
  /** The part of missBytes served by a fetch another read had started (deduplicated). */
  joinedBytes: number;
  /** Requests to the source and the bytes they returned (retries included). */
  fetches: number;
  fetchBytes: number;
  fetchErrors: number;
  /** The part of fetches that went out in another fetch's source read (merged: one request for several). */
  mergedFetches: number;
  /** Bytes merged source reads fetched between their fetches' ranges, and dropped. */
  mergeGapBytes: number;
  /** Source requests in flight right now (a gauge). */
  inflight: number;
  /** The part of fetches and fetchBytes that readahead asked for (not a read). */
  readaheadFetches: number;
  readaheadBytes: number;
  /** Readahead fetches in flight right now (a gauge). */
  readaheadInflight: number;
  /** Refill units fetched by readahead that a read then used (each counted once), and their bytes. */
  readaheadHits: number;
  readaheadHitBytes: number;
  /** The part of fetches and fetchBytes that a background pull asked for (prefetch(), not a read). */
  backgroundFetches: number;
  backgroundBytes: number;
  /** Background fetches in flight right now (a gauge). */
  backgroundInflight: number;
  /** Fetched ranges the verifier rejected. */
  verifyFailures: number;
  /** Range evictions (evict()) and whole-blob evictions, and the bytes they dropped. */
  evictions: number;
  evictedBytes: number;
  /** Bytes written to the cache files and recorded as cached. */
  persistedBytes: number;
  /** Fetched ranges not kept (no room under the capacity or disk floor, too much pending). */
  persistSkipped: number;
  /** Failures writing the cache files (the reads still succeeded). */
  persistErrors: number;
  /** Failures reading the cache files (served from the source instead). */
  cacheReadErrors: number;
}

export function newCounters(): BlobCounters {
  return {
    reads: 0,
    readBytes: 0,
    hitBytes: 0,
    hitPages: 0,
    missBytes: 0,
    missPages: 0,
    joinedBytes: 0,
    fetches: 0,
    fetchBytes: 0,
    fetchErrors: 0,
    mergedFetches: 0,
    mergeGapBytes: 0,
    inflight: 0,
    readaheadFetches: 0,
    readaheadBytes: 0,
    readaheadInflight: 0,
    readaheadHits: 0,
    readaheadHitBytes: 0,
    backgroundFetches: 0,
    backgroundBytes: 0,
    backgroundInflight: 0,
    verifyFailures: 0,
    evictions: 0,
    evictedBytes: 0,
    persistedBytes: 0,
    persistSkipped: 0,
    persistErrors: 0,
    cacheReadErrors: 0,
  };
}

export interface BlobStats extends BlobCounters {
  key: string;
  size: number;
  /** Bytes recorded as cached (whole pages, clipped to the blob size). */
  cachedBytes: number;
}

export interface CacheStats extends BlobCounters {
  dir: string;
  capacity: number;
  /** Bytes the cache files occupy (allocated blocks), as last measured. */
  usage: number;
  entries: number;
  openBlobs: number;
  /** Whole blobs evicted (capacity, disk floor, gc, clear). */
  blobEvictions: number;
  /** Fetched bytes waiting to be written. */
  pendingBytes: number;
}
