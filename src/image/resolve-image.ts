// Resolve an image reference to what a host needs to run it lazily: the manifest's layer blobs as
// daemon layer specs (bottom first), the image config, and a pinned `host/repo@digest` reference.
// An acceleration layer on top is set apart: it holds a trace to replay, not a disk layer.

import type { ImageConfig, ImageManifest } from '../oci/index.js';
import { splitAccelerationLayer } from '../prefetch/accel-layer.js';
import { parseReference } from '../registry/index.js';
import type { RemoteContext } from './remote-context.js';

export interface ResolvedRunImage {
  /** `host/repo@sha256:…` of the platform manifest. */
  pinned: string;
  registry: string;
  repository: string;
  manifest: ImageManifest;
  mediaType: string;
  config: ImageConfig;
  /** The layers to stack, bottom first (an acceleration layer left out). */
  layers: Array<{ digest: string; size: number }>;
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
    layers: lowers.map((l) => ({ digest: l.digest, size: l.size })),
    accelerationLayer: accel && { digest: accel.digest, size: accel.size },
  };
}
