// Resolve an image reference to what a host needs to run it lazily: the manifest's layer blobs as
// daemon layer specs (bottom first), the image config, and a pinned `host/repo@digest` reference.
// An acceleration layer on top is set apart: it holds a trace to replay, not a disk layer.

import { sha256Of } from '../oci/digest.js';
import { type Descriptor, type ImageConfig, type ImageManifest, parseImageConfig } from '../oci/index.js';
import { splitAccelerationLayer } from '../prefetch/accel-layer.js';
import { TRACE_BLOB_RANGES_ANNOTATION } from '../prefetch/trace-ranges.js';
import { parseReference, type Reference } from '../registry/index.js';
import type { StepTimer } from '../util/step-timer.js';
import { chunkDigestsDescriptor } from './chunk-integrity.js';
import type { DigestStore } from './digest-store.js';
import type { RemoteContext } from './remote-context.js';

export interface ResolvedRunImage {
  /** `host/repo@sha256:…` of the platform manifest. */
  pinned: string;
  registry: string;
  repository: string;
  manifest: ImageManifest;
  mediaType: string;
  config: ImageConfig;
  /**
   * The layers to stack, bottom first (an acceleration layer left out), with the digest and size of
   * each one's chunk digest list when the image publishes one (what P2P chunks are checked against).
   */
  layers: Array<{ digest: string; size: number; chunkDigests?: { digest: string; size: number } }>;
  /**
   * The top layer when it is an acceleration (trace) layer, with its replay's blob ranges when
   * it publishes them (prefetch/trace-ranges.ts, not yet checked).
   */
  accelerationLayer?: { digest: string; size: number; blobRanges?: string };
}

export interface ResolveRunOptions {
  /**
   * Told the layers as soon as the manifest names them, before the config arrives: a daemon starts
   * opening them then, so that their index fetches overlap the rest of the launch.
   */
  onLayers?: (image: Pick<ResolvedRunImage, 'registry' | 'repository' | 'layers' | 'accelerationLayer'>) => void;
  /** Image configs fetched before, by digest (read first, and kept there after a fetch). */
  configs?: DigestStore;
  /** Laps `manifest` and `config`. */
  timer?: StepTimer;
  /**
   * Open connections to the registry while the manifest is fetched, for the layers' reads that
   * follow (their first burst of parallel GETs then waits for no handshakes).
   */
  preconnect?: boolean;
}

/** The tag is always looked up in the registry (it may have moved); the config only when not kept. */
export async function resolveRunImage(
  ref: string,
  ctx: RemoteContext,
  opts: ResolveRunOptions = {},
): Promise<ResolvedRunImage> {
  const r = parseReference(ref);
  if (opts.preconnect) ctx.client.transport.preconnect(r.registry);
  const resolved = await ctx.client.resolveImage(r, { platform: ctx.platform });
  opts.timer?.lap('manifest');
  const { lowers, accel } = splitAccelerationLayer(resolved.manifest.layers);
  const layers = lowers.map((l) => ({ digest: l.digest, size: l.size, ...chunkDigestsOf(l, ref) }));
  const blobRanges = accel?.annotations?.[TRACE_BLOB_RANGES_ANNOTATION];
  const accelerationLayer = accel && { digest: accel.digest, size: accel.size, ...(blobRanges ? { blobRanges } : {}) };
  opts.onLayers?.({ registry: r.registry, repository: r.repository, layers, accelerationLayer });
  const config = await imageConfig(r, resolved.manifest.config, ctx, opts.configs);
  opts.timer?.lap('config');
  return {
    pinned: `${r.registry}/${r.repository}@${resolved.digest}`,
    registry: r.registry,
    repository: r.repository,
    manifest: resolved.manifest,
    mediaType: resolved.mediaType,
    config,
    layers,
    accelerationLayer,
  };
}

/**
 * The image config: embedded in its descriptor (`data`, checked against the digest), else from
 * `store` when it holds that digest, else from the registry (then kept, in the background).
 */
async function imageConfig(
  r: Reference,
  desc: Descriptor,
  ctx: RemoteContext,
  store: DigestStore | undefined,
): Promise<ImageConfig> {
  const embedded = embeddedContent(desc);
  if (embedded) {
    void store?.put(desc.digest, embedded).catch(() => {});
    return parseImageConfig(embedded, `config ${r.registry}/${r.repository}@${desc.digest}`);
  }
  const kept = await store?.get(desc.digest);
  if (kept && kept.length === desc.size)
    return parseImageConfig(kept, `config ${r.registry}/${r.repository}@${desc.digest}`);
  const { config, bytes } = await ctx.client.getImageConfig(r, desc);
  // Off the launch path: the write syncs, and the run needs only the config.
  void store?.put(desc.digest, bytes).catch(() => {});
  return config;
}

/**
 * A descriptor's embedded content (OCI `data`, base64) when it is exactly the bytes the digest and
 * size name; undefined otherwise (none, malformed, or not matching: the content is fetched instead).
 */
export function embeddedContent(desc: Descriptor): Buffer | undefined {
  const data = desc.data;
  // Base64 is 4 characters for every 3 bytes: a longer string cannot decode to `size` bytes.
  if (typeof data !== 'string' || !Number.isSafeInteger(desc.size) || data.length > 4 * Math.ceil(desc.size / 3)) {
    return undefined;
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) return undefined;
  const bytes = Buffer.from(data, 'base64');
  return bytes.length === desc.size && sha256Of(bytes) === desc.digest ? bytes : undefined;
}

/** `{chunkDigests}` for a layer whose annotations name a list; nothing for none or a malformed one (CRC checks then). */
function chunkDigestsOf(layer: Descriptor, ref: string): { chunkDigests?: { digest: string; size: number } } {
  try {
    const d = chunkDigestsDescriptor(layer, ref);
    return d ? { chunkDigests: { digest: d.digest, size: d.size } } : {};
  } catch {
    return {};
  }
}
