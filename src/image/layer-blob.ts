// Open one layer blob, wherever it lives, as a sealed LSMT layer: a local file, or a registry
// blob read lazily (HTTP range reads) under the host's block cache. The unwrapping below
// (tar → ZFile → LSMT) is open-layer.ts; ZFile block CRC failures evict the cached range so it
// is fetched again. Not a puller: nothing is read beyond what reads touch.

import type { BlockFile } from '../blockfile/blockfile.js';
import { LocalFile } from '../blockfile/local.js';
import { observeReads } from '../blockfile/observed.js';
import { prefetchRange } from '../blockfile/prefetch.js';
import type { CachedBlob } from '../cache/blob.js';
import { DadiError } from '../errors.js';
import type { SealedLayer } from '../format/lsmt/index.js';
import { type Descriptor, isDigest } from '../oci/index.js';
import { joinEarlyFetches } from '../prefetch/trace-ranges.js';
// The modules themselves, not registry/index.js: a stack of local files (a conversion's) does not
// load the registry client's transport.
import { parseReference } from '../registry/reference.js';
import { RemoteBlob } from '../registry/remote-blob.js';
import type { RepoRef } from '../registry/repo-request.js';
import { fetchWhy } from '../util/fetch-log.js';
import { type OpenLayerOptions, openLayer } from './open-layer.js';
import type { RemoteContext } from './remote-context.js';

/** What registry blobs are read with: the client and, when this process owns it, the block cache. */
export type BlobReadContext = Pick<RemoteContext, 'client' | 'cache' | 'p2p'>;

/** Where a layer blob is: a local file, or a blob of a registry repository. */
export type LayerBlobSource =
  | { kind: 'file'; path: string }
  | {
      kind: 'registry';
      repo: RepoRef;
      digest: string;
      /** Known size (skips a HEAD). */
      size?: number;
      /** The layer's chunk digest list (from its annotations): what P2P chunks are checked against. */
      chunkDigests?: Descriptor;
    };

/** What the remote read path fetched, for `--stats`. */
export interface FetchStats {
  /** Range GETs sent to the registry. */
  requests: number;
  /** Bytes received from the registry. */
  bytesFetched: number;
  /** Bytes served from the local cache without a fetch. */
  cacheHitBytes: number;
  /** In fetchStats(blobs): the quickest small range GET of any, in ms (quickestGetMs); unset before one. */
  quickestGetMs?: number;
}

export interface OpenedLayerBlob {
  source: LayerBlobSource;
  layer: SealedLayer;
  /** The blob through the host cache (registry blobs, when this process owns the cache). */
  cached?: CachedBlob;
  /** Bytes read from the blob itself (fetched from the registry, or read from the file). */
  blobBytesRead(): number;
  fetchStats(): FetchStats;
  /** FetchStats.quickestGetMs alone (no cache counters: asked on every file's first read). */
  quickestGetMs(): number | undefined;
}

/**
 * The first bytes of a registry layer fetched with its headers: the tar and ZFile headers and, in
 * a converted layer, its disk's first blocks (superblock, group descriptors: 16-128 KiB of the
 * Debian images' layers are read by every mount).
 */
export const LAYER_HEAD_BYTES = 128 * 1024;

/**
 * How much of a registry layer's end to fetch with its head, before its trailer says where its
 * indexes start: a converted layer ends with its LSMT index (in the last ZFile blocks), the ZFile
 * jump table (4 bytes per block) and trailer, and the tar's end blocks. The Debian images' layers
 * need their last 1/425-1/405 (137 KiB of 58 MB, 49 KiB of 20 MB); 1/320 leaves room for layers
 * that compress better. A layer that needs more reads the rest itself, one round trip later, as
 * without this; one without these indexes (a raw disk) fetches these bytes for nothing.
 */
export function layerTailBytes(blobSize: number): number {
  const want = Math.ceil(blobSize / 320 / 4096) * 4096;
  return Math.min(blobSize, Math.max(64 * 1024, Math.min(want, 4 << 20)));
}

/**
 * Open a layer blob; registry blobs need `ctx` (its client and, when it has one, its cache).
 * `wrapInner` puts a stage over the unwrapped LSMT file (open-layer.ts).
 */
export async function openLayerBlob(
  source: LayerBlobSource,
  ctx?: BlobReadContext,
  opts: Pick<OpenLayerOptions, 'wrapInner'> & {
    /** Ranges of the blob to fetch into the cache now, beside its headers (a trace replay's, known ahead). */
    prefetch?: readonly { offset: number; length: number }[];
  } = {},
): Promise<OpenedLayerBlob> {
  if (source.kind === 'file') {
    let bytesRead = 0;
    const raw = observeReads(await LocalFile.open(source.path), (_offset, n) => {
      bytesRead += n;
    });
    const layer = await openOrClose(raw, () => openLayer(raw, opts));
    return {
      source,
      layer,
      blobBytesRead: () => bytesRead,
      fetchStats: () => ({ requests: 0, bytesFetched: 0, cacheHitBytes: 0 }),
      quickestGetMs: () => undefined,
    };
  }
  if (!ctx) throw new DadiError('EINVAL', `${blobName(source)}: a registry blob needs a registry client`);
  const { remote, stats } = await openRemote(source, ctx);
  const cached: CachedBlob | undefined = ctx.cache?.open(source.digest, remote);
  const raw = cached ?? remote;
  // The headers' first read brings the blob's first bytes with it: a converted layer's disk data
  // starts with its superblock and group descriptors, which the mount reads first (one round trip
  // fewer on the way to it); the header reads join this fetch.
  // Its last bytes (the indexes) come in parallel: the trailer's read would otherwise wait for the
  // tar header's (the ZFile ends where the tar's payload does), one more round trip before the
  // layer is open.
  if (cached) {
    const tailBytes = layerTailBytes(cached.size);
    // A trace replay's ranges known ahead (the acceleration layer's blob ranges) ride on the head's
    // and the tail's GETs where they lie next to them (joinEarlyFetches); the others go after the index.
    const { head, tail, rest } = joinEarlyFetches(
      { offset: 0, end: LAYER_HEAD_BYTES },
      cached.size - tailBytes >= LAYER_HEAD_BYTES ? { offset: cached.size - tailBytes, end: cached.size } : undefined,
      opts.prefetch ?? [],
    );
    void fetchWhy('tar-header', () => prefetchRange(cached, head.offset, head.end - head.offset)).catch(() => {
      // The header reads fetch what they need themselves.
    });
    if (tail)
      void fetchWhy('zfile-index', () => prefetchRange(cached, tail.offset, tail.end - tail.offset)).catch(() => {
        // The index reads fetch what they need themselves.
      });
    for (const r of rest) {
      void fetchWhy('trace', () => prefetchRange(cached, r.offset, r.length)).catch(() => {
        // A hint: the replay reads what it needs itself.
      });
    }
  }
  const layer = await openOrClose(raw, () =>
    openLayer(raw, {
      ...opts,
      // Without a cache a re-read goes to the registry anyway; with one, drop the bad range first.
      evict: async (offset, length) => {
        await cached?.evict(offset, length);
      },
    }),
  );
  return {
    source,
    layer,
    cached,
    blobBytesRead: () => stats.bytesFetched,
    fetchStats: () => ({
      requests: stats.rangeRequests,
      bytesFetched: stats.bytesFetched,
      cacheHitBytes: cached?.stats().hitBytes ?? 0,
    }),
    quickestGetMs: () => stats.quickestGetMs,
  };
}

/**
 * The uncached source of a registry blob: range reads from the registry, or, with a P2P agent
 * (which needs the cache above it), chunks through the blob's P2P tree. `stats` counts what the
 * source delivered either way.
 */
async function openRemote(
  source: Extract<LayerBlobSource, { kind: 'registry' }>,
  ctx: BlobReadContext,
): Promise<{ remote: BlockFile; stats: { rangeRequests: number; bytesFetched: number; quickestGetMs?: number } }> {
  if (!ctx.p2p || !ctx.cache) {
    const remote = await RemoteBlob.open(ctx.client, source.repo, source.digest, { size: source.size });
    return { remote, stats: remote.stats };
  }
  const size = source.size ?? (await ctx.client.blobSize(source.repo, source.digest));
  const stats = { rangeRequests: 0, bytesFetched: 0 };
  const blob = await ctx.p2p.open({ ...source.repo, digest: source.digest, chunkDigests: source.chunkDigests }, size);
  const remote = observeReads(blob, (_offset, n) => {
    stats.rangeRequests++;
    stats.bytesFetched += n;
  });
  return { remote, stats };
}

/** The sum of what `blobs` fetched. */
export function fetchStats(blobs: readonly OpenedLayerBlob[]): FetchStats {
  const out: FetchStats = { requests: 0, bytesFetched: 0, cacheHitBytes: 0 };
  for (const b of blobs) {
    const s = b.fetchStats();
    out.requests += s.requests;
    out.bytesFetched += s.bytesFetched;
    out.cacheHitBytes += s.cacheHitBytes;
  }
  out.quickestGetMs = quickestGetMs(blobs);
  return out;
}

/** The quickest small range GET of any of `blobs`, in ms; undefined before one. */
export function quickestGetMs(blobs: readonly OpenedLayerBlob[]): number | undefined {
  let out: number | undefined;
  for (const b of blobs) {
    const q = b.quickestGetMs();
    if (q !== undefined && (out === undefined || q < out)) out = q;
  }
  return out;
}

/** `host[:port]/repo@sha256:…` — a blob reference (as `dadi layer export` and the daemon take them). */
export function parseBlobReference(text: string): (RepoRef & { digest: string }) | undefined {
  if (!/^[^/]+\/.+@sha256:[0-9a-f]{64}$/.test(text)) return undefined;
  const ref = parseReference(text);
  if (!ref.digest || !isDigest(ref.digest)) return undefined;
  return { registry: ref.registry, repository: ref.repository, digest: ref.digest };
}

/** A command-line layer argument: a blob reference, else a local file path. */
export function layerBlobArgument(text: string): LayerBlobSource {
  const ref = parseBlobReference(text);
  if (!ref) return { kind: 'file', path: text };
  return { kind: 'registry', repo: { registry: ref.registry, repository: ref.repository }, digest: ref.digest };
}

function blobName(s: LayerBlobSource): string {
  return s.kind === 'file' ? s.path : `${s.repo.registry}/${s.repo.repository}@${s.digest}`;
}

async function openOrClose(raw: BlockFile, open: () => Promise<SealedLayer>): Promise<SealedLayer> {
  try {
    return await open();
  } catch (e) {
    await raw.close();
    throw e;
  }
}
