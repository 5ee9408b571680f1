// The daemon's layer source for registry blobs: `{kind: 'registry', ref: 'host/repo@sha256:…',
// size?}` opens lazily through the host's shared block cache (one client and cache per daemon).

import { DadiError } from '../errors.js';
import { openRemoteLayer, parseBlobReference } from '../image/open-image.js';
import { openRemoteContext, type RemoteContext, type RemoteContextOptions } from '../image/remote-context.js';
import type { LayerSource, LayerSpec } from './layer-source.js';

export interface RegistryLayerSource extends LayerSource {
  close(): Promise<void>;
}

/** Layer specs for an image's layers (bottom first), as the daemon's registry source takes them. */
export function registryLayerSpecs(
  registry: string,
  repository: string,
  layers: ReadonlyArray<{ digest: string; size: number }>,
): LayerSpec[] {
  return layers.map((l) => ({ kind: 'registry', ref: `${registry}/${repository}@${l.digest}`, size: l.size }));
}

export function registryLayerSource(opts: RemoteContextOptions = {}): RegistryLayerSource {
  let ctx: Promise<RemoteContext> | undefined;
  return {
    kind: 'registry',
    async open(spec) {
      const ref = parseBlobReference(spec.ref);
      if (!ref) throw new DadiError('EINVAL', `${spec.ref}: not a blob reference (host[:port]/repo@sha256:…)`);
      ctx ??= openRemoteContext(opts);
      const c = await ctx;
      const size = typeof spec.size === 'number' ? spec.size : undefined;
      const r = await openRemoteLayer(ref, ref.digest, { client: c.client, cache: c.cache, size });
      return {
        layer: r.layer,
        info: () => ({ kind: 'registry', ref: spec.ref, blobBytesRead: r.remote.stats.bytesFetched }),
      };
    },
    async close() {
      if (ctx) await (await ctx).close();
    },
  };
}
