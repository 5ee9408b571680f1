// What the daemon's layer specs name: `{kind: 'file', ref: PATH}` a local layer blob,
// `{kind: 'registry', ref: 'host/repo@sha256:…', size?}` a registry blob (read through the host's
// cache). Only the mapping: opening and stacking are src/image's.

import { DadiError } from '../errors.js';
import { chunkDigestsDescriptor } from '../image/chunk-integrity.js';
import { type LayerBlobSource, parseBlobReference } from '../image/layer-blob.js';
import type { Descriptor, Digest } from '../oci/index.js';
import { chunkDigestsAnnotations } from '../p2p/chunk-digests.js';
import type { LayerSpec } from './layer-spec.js';

export { type LayerSpec, type MountedLayerInfo, normalizeLayerSpec } from './layer-spec.js';

export function layerBlobSourceOf(spec: LayerSpec): LayerBlobSource {
  if (spec.kind === 'file') return { kind: 'file', path: spec.ref };
  if (spec.kind === 'registry') {
    const ref = parseBlobReference(spec.ref);
    if (!ref) throw new DadiError('EINVAL', `${spec.ref}: not a blob reference (host[:port]/repo@sha256:…)`);
    const size = typeof spec.size === 'number' ? spec.size : undefined;
    return {
      kind: 'registry',
      repo: { registry: ref.registry, repository: ref.repository },
      digest: ref.digest,
      size,
      chunkDigests: chunkDigestsOfSpec(spec, ref.digest as Digest),
    };
  }
  throw new DadiError('EUNSUPPORTED', `layer ${spec.ref}: no layer source for kind ${JSON.stringify(spec.kind)}`);
}

/**
 * The chunk digest list a registry layer spec names (`chunkDigests: {digest, size}`), checked the
 * way the manifest annotations it came from are (EFORMAT / ERANGE naming the layer).
 */
function chunkDigestsOfSpec(spec: LayerSpec, layer: Digest): Descriptor | undefined {
  const c = spec.chunkDigests as { digest?: unknown; size?: unknown } | undefined;
  if (c === undefined) return undefined;
  const annotations =
    typeof c.digest === 'string' && typeof c.size === 'number'
      ? chunkDigestsAnnotations({ digest: c.digest as Digest, size: c.size })
      : { 'io.dadi.chunk-digests': String(c.digest) };
  return chunkDigestsDescriptor({ mediaType: 'layer', digest: layer, size: 0, annotations }, spec.ref);
}
