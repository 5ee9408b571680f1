// Open layer blobs (bottom first) and stack them as one read-only virtual disk: the merged LSMT
// stack over every layer. Layers open concurrently (each costs a few round trips when remote)
// and keep their order; a failure closes the ones already open.

import { DadiError } from '../errors.js';
import { LayerStack, MAX_STACK_LAYERS } from '../format/lsmt/index.js';
import {
  type BlobReadContext,
  type FetchStats,
  fetchStats,
  type LayerBlobSource,
  type OpenedLayerBlob,
  openLayerBlob,
} from './layer-blob.js';

export interface OpenedLayerStack {
  blobs: OpenedLayerBlob[];
  /** The merged stack of every layer, bottom first. */
  device: LayerStack;
  stats(): FetchStats;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Names the stack in errors (an image spec); default: the layer count. */
  name?: string;
  /** Require each layer's parent uuid to match the layer below (images made by convert/commit do). */
  checkChain?: boolean;
}

export async function openLayerStack(
  sources: readonly LayerBlobSource[],
  ctx: BlobReadContext | undefined,
  opts: StackOptions = {},
): Promise<OpenedLayerStack> {
  const name = opts.name ?? 'layer stack';
  if (sources.length === 0) throw new DadiError('EFORMAT', `${name}: no layers`);
  if (sources.length > MAX_STACK_LAYERS) {
    throw new DadiError(
      'EUNSUPPORTED',
      `${name}: ${sources.length} layers (at most ${MAX_STACK_LAYERS} can be stacked)`,
    );
  }
  const settled = await Promise.allSettled(sources.map((s) => openLayerBlob(s, ctx)));
  const blobs = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const device = LayerStack.fromLayers(
      blobs.map((b) => b.layer),
      { checkChain: opts.checkChain },
    );
    return { blobs, device, stats: () => fetchStats(blobs), close: () => device.close() };
  } catch (e) {
    await Promise.all(blobs.map((b) => b.layer.close().catch(() => {})));
    throw e;
  }
}
