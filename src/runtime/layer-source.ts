// What the daemon's layer specs name: `{kind: 'file', ref: PATH}` a local layer blob,
// `{kind: 'registry', ref: 'host/repo@sha256:…', size?}` a registry blob (read through the host's
// cache). Only the mapping: opening and stacking are src/image's.

import { DadiError } from '../errors.js';
import { type LayerBlobSource, parseBlobReference } from '../image/layer-blob.js';
import type { LayerSpec } from './layer-spec.js';

export { type LayerSpec, type MountedLayerInfo, normalizeLayerSpec } from './layer-spec.js';

export function layerBlobSourceOf(spec: LayerSpec): LayerBlobSource {
  if (spec.kind === 'file') return { kind: 'file', path: spec.ref };
  if (spec.kind === 'registry') {
    const ref = parseBlobReference(spec.ref);
    if (!ref) throw new DadiError('EINVAL', `${spec.ref}: not a blob reference (host[:port]/repo@sha256:…)`);
    const size = typeof spec.size === 'number' ? spec.size : undefined;
    return { kind: 'registry', repo: { registry: ref.registry, repository: ref.repository }, digest: ref.digest, size };
  }
  throw new DadiError('EUNSUPPORTED', `layer ${spec.ref}: no layer source for kind ${JSON.stringify(spec.kind)}`);
}
