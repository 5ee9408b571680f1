// Open layer blobs (bottom first) and stack them as one read-only virtual disk: the merged LSMT
// stack over every layer. Layers open concurrently (each costs a few round trips when remote)
// and keep their order; a failure closes the ones already open. Trace prefetch composes here too:
// a recorder over each layer's LSMT file, or a replay of a trace through the layers (cancelled by
// stopPrefetch(), which close() calls first).

import { DadiError } from '../errors.js';
import { LayerStack, MAX_STACK_LAYERS } from '../format/lsmt/index.js';
import { Ext4Prefetch, type Ext4PrefetchOptions } from '../prefetch/ext4-prefetch.js';
import type { TraceRecorder } from '../prefetch/trace-recorder.js';
import { type ReplayOptions, type ReplayStats, TraceReplay } from '../prefetch/trace-replay.js';
import { fetchWhy } from '../util/fetch-log.js';
import {
  type BlobReadContext,
  type FetchStats,
  fetchStats,
  type LayerBlobSource,
  type OpenedLayerBlob,
  openLayerBlob,
  quickestGetMs,
} from './layer-blob.js';

export interface OpenedLayerStack {
  blobs: OpenedLayerBlob[];
  /** The merged stack of every layer, bottom first. */
  device: LayerStack;
  stats(): FetchStats;
  /** The trace replay started by the `replay` option. */
  replay?: TraceReplay;
  /**
   * The ext4 prefetch started by the `ext4Prefetch` option: metadata now; file readahead on the
   * reads of a device it watches (`ext4.watch(device)` is what to export).
   */
  ext4?: Ext4Prefetch;
  /** Cancel the replay and the ext4 prefetch and wait for their reads in flight (before closing a device over this stack). */
  stopPrefetch(): Promise<ReplayStats | undefined>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Names the stack in errors (an image spec); default: the layer count. */
  name?: string;
  /** Require each layer's parent uuid to match the layer below (images made by convert/commit do). */
  checkChain?: boolean;
  /** Record every full-length read of each layer's LSMT file (layer index = position, bottom 0). */
  record?: TraceRecorder;
  /** Replay these trace records through the layers (and the cache below them), in the background. */
  replay?: { records: ConstructorParameters<typeof TraceReplay>[1] } & ReplayOptions;
  /** Prefetch the ext4 metadata of the stack's disk now, and offer file readahead (ext4-prefetch.ts). */
  ext4Prefetch?: Ext4PrefetchOptions;
  /**
   * Layers already open for some of the sources (same positions; undefined: open it here), taken
   * over by the stack: used as they are, and closed with it, or at once when it fails. With
   * `record` they are closed and opened again (the recorder goes inside a layer as it opens).
   */
  opened?: readonly (OpenedLayerBlob | undefined)[];
}

export async function openLayerStack(
  sources: readonly LayerBlobSource[],
  ctx: BlobReadContext | undefined,
  opts: StackOptions = {},
): Promise<OpenedLayerStack> {
  const name = opts.name ?? 'layer stack';
  const record = opts.record;
  const given = opts.opened ?? [];
  const closeGiven = () => Promise.all(given.map((b) => b?.layer.close().catch(() => {})));
  const invalid =
    sources.length === 0
      ? new DadiError('EFORMAT', `${name}: no layers`)
      : sources.length > MAX_STACK_LAYERS
        ? new DadiError(
            'EUNSUPPORTED',
            `${name}: ${sources.length} layers (at most ${MAX_STACK_LAYERS} can be stacked)`,
          )
        : undefined;
  if (invalid || record) await closeGiven();
  if (invalid) throw invalid;
  const settled = await Promise.allSettled(
    sources.map((s, i) =>
      !record && given[i]
        ? Promise.resolve(given[i])
        : openLayerBlob(s, ctx, record ? { wrapInner: (f) => record.wrap(f, i) } : {}),
    ),
  );
  const blobs = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const device = LayerStack.fromLayers(
      blobs.map((b) => b.layer),
      { checkChain: opts.checkChain },
    );
    const replay = opts.replay
      ? fetchWhy(
          'trace',
          () =>
            new TraceReplay(
              blobs.map((b) => b.layer.file),
              opts.replay!.records,
              opts.replay,
            ),
        )
      : undefined;
    const ext4 = opts.ext4Prefetch
      ? new Ext4Prefetch(device, { roundTripMs: () => quickestGetMs(blobs), ...opts.ext4Prefetch })
      : undefined;
    const stopPrefetch = async () => {
      await ext4?.cancel();
      return replay?.cancel();
    };
    return {
      blobs,
      device,
      stats: () => fetchStats(blobs),
      replay,
      ext4,
      stopPrefetch,
      close: async () => {
        await stopPrefetch();
        await device.close();
      },
    };
  } catch (e) {
    await Promise.all(blobs.map((b) => b.layer.close().catch(() => {})));
    throw e;
  }
}
