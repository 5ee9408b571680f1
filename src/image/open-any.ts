// Open an image named either by a registry reference (`host[:port]/repo[:tag|@digest]`, read
// lazily through the cache) or by an OCI layout (`oci:DIR[:TAG]`, layer blobs read from its files),
// as one virtual disk with its config. Not a converter: the layers must already be DADI layers.

import type { BlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import { LayerStack, type SealedLayer } from '../format/lsmt/index.js';
import { type ImageConfig, type ImageManifest, isLayoutSpec } from '../oci/index.js';
import { type FetchStats, openRemoteImage } from './open-image.js';
import { openLayerFile } from './open-layer.js';
import type { RemoteContext } from './remote-context.js';
import { openImageSource } from './source.js';

export interface OpenedAnyImage {
  name: string;
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
  device: BlockFile & { size: number };
  /** What came from a registry (zeros for layouts). */
  stats(): FetchStats;
  close(): Promise<void>;
}

export async function openAnyImage(spec: string, ctx: RemoteContext): Promise<OpenedAnyImage> {
  if (!isLayoutSpec(spec)) {
    const img = await openRemoteImage(spec, ctx);
    return {
      name: spec,
      manifestDigest: img.resolved.digest,
      manifest: img.manifest,
      config: img.config,
      device: img.device,
      stats: img.stats,
      close: img.close,
    };
  }
  const src = await openImageSource(spec, { client: ctx.client });
  try {
    const resolved = await src.resolve({ platform: ctx.platform });
    const { config } = await src.getConfig(resolved.manifest.config);
    if (resolved.manifest.layers.length > 255) {
      throw new DadiError(
        'EUNSUPPORTED',
        `${spec}: ${resolved.manifest.layers.length} layers (at most 255 can be stacked)`,
      );
    }
    const layers: SealedLayer[] = [];
    try {
      for (const desc of resolved.manifest.layers) {
        const path = src.localBlobPath?.(desc);
        if (path === undefined) throw new DadiError('EUNSUPPORTED', `${spec}: blob ${desc.digest} has no local file`);
        layers.push(await openLayerFile(path));
      }
    } catch (e) {
      await Promise.all(layers.map((l) => l.close()));
      throw e;
    }
    const device = LayerStack.fromLayers(layers);
    return {
      name: spec,
      manifestDigest: resolved.digest,
      manifest: resolved.manifest,
      config,
      device,
      stats: () => ({ requests: 0, bytesFetched: 0, cacheHitBytes: 0 }),
      close: () => device.close(),
    };
  } finally {
    await src.close();
  }
}
