// How requests name layers: `{kind, ref, ...}` specs, kept apart from the sources that open them
// so that clients (the CLI) can build specs without loading the format and registry code.

import { resolve } from 'node:path';

/** A layer as named in a request: `kind` picks the source, `ref` means what that source says. */
export interface LayerSpec {
  /** 'file' (local layer blob path) by default; other kinds come from registered sources. */
  kind: string;
  ref: string;
  /** Source-specific extras (e.g. a digest and size for registry blobs); passed through as is. */
  [extra: string]: unknown;
}

/** What `ps` shows per layer. */
export interface MountedLayerInfo {
  kind: string;
  ref: string;
  /** Bytes read from the layer's blob (before decompression) since it was opened. */
  blobBytesRead: number;
  /** Its background pull into the host cache, when one runs (prefetch/layer-pull.ts). */
  pull?: { state: string; bytesFetched: number; size?: number; error?: string };
}

/** A plain path means a local file. Relative paths are resolved against `cwd`. */
export function normalizeLayerSpec(spec: string | LayerSpec, cwd = process.cwd()): LayerSpec {
  if (typeof spec === 'string') return { kind: 'file', ref: resolve(cwd, spec) };
  if (spec.kind === 'file') return { ...spec, ref: resolve(cwd, spec.ref) };
  return spec;
}

/** Layer specs for an image's registry blobs (bottom first), as the daemon's registry source takes them. */
export function registryLayerSpecs(
  registry: string,
  repository: string,
  layers: ReadonlyArray<{ digest: string; size: number; chunkDigests?: { digest: string; size: number } }>,
): LayerSpec[] {
  return layers.map((l) => ({
    kind: 'registry',
    ref: `${registry}/${repository}@${l.digest}`,
    size: l.size,
    ...(l.chunkDigests ? { chunkDigests: l.chunkDigests } : {}),
  }));
}
