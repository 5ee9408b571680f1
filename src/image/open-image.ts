// Open DADI images and layer blobs that live in a registry: each layer blob is a RemoteBlob
// (HTTP range reads) under the shared persistent block cache, unwrapped (tar → ZFile → LSMT) and
// stacked. ZFile block CRC failures evict the cached range and fetch it again.
// Not a puller: nothing is downloaded beyond the blocks that reads touch.

import type { BlockFile } from '../blockfile/blockfile.js';
import type { CachedBlob } from '../cache/blob.js';
import type { BlockCache } from '../cache/index.js';
import { DadiError } from '../errors.js';
import { LayerStack, type SealedLayer } from '../format/lsmt/index.js';
import type { ImageConfig, ImageManifest, Platform } from '../oci/index.js';
import { isDigest } from '../oci/index.js';
import {
  parseReference,
  type Reference,
  type RegistryClient,
  RemoteBlob,
  type RepoRef,
  type ResolvedImage,
} from '../registry/index.js';
import { openLayer } from './open-layer.js';

/** What the remote read path fetched, for `--stats`. */
export interface FetchStats {
  /** Range GETs sent to the registry. */
  requests: number;
  /** Bytes received from the registry. */
  bytesFetched: number;
  /** Bytes served from the local cache without a fetch. */
  cacheHitBytes: number;
}

/** One layer blob opened remotely, with handles for statistics. */
export interface RemoteLayer {
  digest: string;
  layer: SealedLayer;
  remote: RemoteBlob;
  cached?: CachedBlob;
}

export interface RemoteOpenOptions {
  client: RegistryClient;
  /** The shared block cache; without it every read goes to the registry. */
  cache?: BlockCache;
  /** Blob size if known (skips a HEAD). */
  size?: number;
}

/** `host[:port]/repo@sha256:…` — a blob reference (as accepted by `dadi layer export`). */
export function parseBlobReference(text: string): (RepoRef & { digest: string }) | undefined {
  if (!/^[^/]+\/.+@sha256:[0-9a-f]{64}$/.test(text)) return undefined;
  const ref = parseReference(text);
  if (!ref.digest || !isDigest(ref.digest)) return undefined;
  return { registry: ref.registry, repository: ref.repository, digest: ref.digest };
}

/** Open one layer blob from the registry (through the cache when given) as a sealed layer. */
export async function openRemoteLayer(repo: RepoRef, digest: string, opts: RemoteOpenOptions): Promise<RemoteLayer> {
  const remote = await RemoteBlob.open(opts.client, repo, digest, { size: opts.size });
  let source: BlockFile = remote;
  let cached: CachedBlob | undefined;
  if (opts.cache) {
    cached = opts.cache.open(digest, remote);
    source = cached;
  }
  try {
    const layer = await openLayer(source, {
      // Without a cache a re-read goes to the registry anyway; with one, drop the bad range first.
      evict: async (offset, length) => {
        await cached?.evict(offset, length);
      },
    });
    return { digest, layer, remote, cached };
  } catch (e) {
    await source.close();
    throw e;
  }
}

export interface OpenedImage {
  ref: Reference;
  resolved: ResolvedImage;
  manifest: ImageManifest;
  config: ImageConfig;
  layers: RemoteLayer[];
  /** The merged stack of every layer, bottom first: the image's virtual disk. */
  device: LayerStack;
  stats(): FetchStats;
  close(): Promise<void>;
}

/** Resolve `ref` (platform-selected when it names an index) and open its layers as one disk. */
export async function openRemoteImage(
  ref: Reference | string,
  opts: { client: RegistryClient; cache?: BlockCache; platform?: Platform },
): Promise<OpenedImage> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  const resolved = await opts.client.resolveImage(r, { platform: opts.platform });
  const manifest = resolved.manifest;
  if (manifest.layers.length === 0) throw new DadiError('EFORMAT', `${refName(r)}: the image has no layers`);
  if (manifest.layers.length > 255) {
    throw new DadiError('EUNSUPPORTED', `${refName(r)}: ${manifest.layers.length} layers (at most 255 can be stacked)`);
  }
  const { config } = await opts.client.getImageConfig(r, manifest.config);
  const layers: RemoteLayer[] = [];
  try {
    // Open every layer concurrently (each needs its header, trailer and index), keep the order.
    const opened = await Promise.allSettled(
      manifest.layers.map((d) =>
        openRemoteLayer(r, d.digest, { client: opts.client, cache: opts.cache, size: d.size }),
      ),
    );
    for (const o of opened) if (o.status === 'fulfilled') layers.push(o.value);
    const failed = opened.find((o) => o.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  } catch (e) {
    await Promise.all(layers.map((l) => l.layer.close()));
    throw e;
  }
  const device = LayerStack.fromLayers(layers.map((l) => l.layer));
  return {
    ref: r,
    resolved,
    manifest,
    config,
    layers,
    device,
    stats: () => fetchStats(layers),
    close: () => device.close(),
  };
}

export function fetchStats(layers: readonly RemoteLayer[]): FetchStats {
  const out: FetchStats = { requests: 0, bytesFetched: 0, cacheHitBytes: 0 };
  for (const l of layers) {
    out.requests += l.remote.stats.rangeRequests;
    out.bytesFetched += l.remote.stats.bytesFetched;
    if (l.cached) out.cacheHitBytes += l.cached.stats().hitBytes;
  }
  return out;
}

function refName(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}
