// The daemon's layer source for registry blobs: `{kind: 'registry', ref: 'host/repo@sha256:…',
// size?}` opens lazily through the host's shared block cache (one client and cache per daemon).

import { DadiError } from '../errors.js';
import { openRemoteLayer, parseBlobReference } from '../image/open-image.js';
import { openRemoteContext, type RemoteContext, type RemoteContextOptions } from '../image/remote-context.js';
import { type ResolvedRunImage, resolveRunImage } from '../image/resolve-image.js';
import { parsePlatform } from '../oci/index.js';
import type { LayerSource } from './layer-source.js';

export { registryLayerSpecs } from './layer-spec.js';

export interface RegistryLayerSource extends LayerSource {
  /** Resolve an image reference with this source's client (for the daemon's `resolve`). */
  resolveImage(ref: string, platform?: string): Promise<ResolvedRunImage>;
  close(): Promise<void>;
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
    async resolveImage(ref, platform) {
      ctx ??= openRemoteContext(opts);
      const c = await ctx;
      return resolveRunImage(ref, platform ? { ...c, platform: parsePlatform(platform) } : c);
    },
    async close() {
      if (ctx) await (await ctx).close();
    },
  };
}
