// Resolve an image reference to what a host needs to run it lazily: the manifest's layer blobs as
// daemon layer specs (bottom first), the image config, and a pinned `host/repo@digest` reference.
// An acceleration layer on top is set apart: it holds a trace to replay, not a disk layer.

import type { Descriptor, ImageConfig, ImageManifest } from '../oci/index.js';
import { splitAccelerationLayer } from '../prefetch/accel-layer.js';
import { parseReference } from '../registry/index.js';
import { chunkDigestsDescriptor } from './chunk-integrity.js';
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
  /** The top layer when it is an acceleration (trace) layer. */
  accelerationLayer?: { digest: string; size: number };
}

export async function resolveRunImage(ref: string, ctx: RemoteContext): Promise<ResolvedRunImage> {
  const r = parseReference(ref);
  const resolved = await ctx.client.resolveImage(r, { platform: ctx.platform });
  const { config } = await ctx.client.getImageConfig(r, resolved.manifest.config);
  const { lowers, accel } = splitAccelerationLayer(resolved.manifest.layers);
  return {
    pinned: `${r.registry}/${r.repository}@${resolved.digest}`,
    registry: r.registry,
    repository: r.repository,
    manifest: resolved.manifest,
    mediaType: resolved.mediaType,
    config,
    layers: lowers.map((l) => ({ digest: l.digest, size: l.size, ...chunkDigestsOf(l, ref) })),
    accelerationLayer: accel && { digest: accel.digest, size: accel.size },
  };
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
