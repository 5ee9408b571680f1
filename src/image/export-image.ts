// Export an image, or a stack of layer blobs, into a sparse raw disk file: what `dadi image
// export` and `dadi layer export` run, in the CLI or (when it owns the block cache) in the daemon.
// The copy itself is raw-disk.ts.

import type { FetchStats, LayerBlobSource } from './layer-blob.js';
import { openLayerStack } from './layer-stack.js';
import { openImage } from './open-image.js';
import { type ExportStats, exportDisk } from './raw-disk.js';
import type { RemoteContext } from './remote-context.js';

export interface ExportResult {
  stats: ExportStats;
  fetched: FetchStats;
  /** The image's manifest digest (image exports). */
  digest?: string;
  /** Layers in the exported stack. */
  layers: number;
}

/** `image` (a registry ref or `oci:` layout) into `out`; an aborted `signal` cancels it. */
export async function exportImage(
  image: string,
  ctx: RemoteContext,
  out: string,
  signal?: AbortSignal,
): Promise<ExportResult> {
  const img = await openImage(image, ctx);
  try {
    const stats = await exportDisk(img.device, out, { signal });
    return { stats, fetched: img.stats(), digest: img.manifestDigest, layers: img.manifest.layers.length };
  } finally {
    await img.close();
  }
}

/** A stack of layer blobs (bottom first) into `out`; registry blobs need `ctx`. */
export async function exportLayers(
  sources: LayerBlobSource[],
  ctx: RemoteContext | undefined,
  out: string,
  signal?: AbortSignal,
): Promise<ExportResult> {
  const stack = await openLayerStack(sources, ctx, { name: 'layer export' });
  try {
    return { stats: await exportDisk(stack.device, out, { signal }), fetched: stack.stats(), layers: sources.length };
  } finally {
    await stack.close();
  }
}
