// The two ends of every image copy and every image open: where images are read from
// (ImageSource) and written to (ImageTarget), whether an OCI layout (oci/layout.ts) or a registry
// repository (registry/image-endpoint.ts). `image/source.ts` picks one from a spec string.
// Types only, so the layers below registry/ can implement them.

import type { Digest } from './digest.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from './manifest.js';

/** One image manifest, resolved from a tag/digest through any indexes. */
export interface ResolvedManifest {
  /** Digest of the image manifest (not of the index). */
  digest: Digest;
  mediaType: string;
  manifest: ImageManifest;
  bytes: Buffer;
  /** Digests of the indexes walked through, outermost first. */
  indexes: Digest[];
}

/** Where images are read from: an OCI layout or a registry repository. */
export interface ImageSource {
  /** The spec as the user wrote it, for messages. */
  readonly name: string;
  /**
   * Resolve the tag/digest to one image manifest (indexes: the entry for `platform`, default this
   * machine's; or, with `digest`, that image manifest of the index, e.g. one of `platformImages`).
   */
  resolve(opts?: { platform?: Platform; digest?: Digest }): Promise<ResolvedManifest>;
  /**
   * The image manifests of the tag's index, nested indexes walked, each with its platform; empty
   * when the tag names a single image manifest.
   */
  platformImages?(): Promise<Descriptor[]>;
  /** The image config (digest and size verified). */
  getConfig(desc: Descriptor): Promise<{ config: ImageConfig; bytes: Buffer }>;
  /** A blob's bytes as a stream; the digest (and size) are checked at the end: a mismatch throws ECORRUPT. */
  blobStream(desc: Descriptor, opts?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>;
  /** A local file holding the blob, when there is one (unverified: hash it while reading). */
  localBlobPath?(desc: Descriptor): string | undefined;
  close(): Promise<void>;
}

/** Where images are written to: an OCI layout or a registry repository. */
export interface ImageTarget {
  readonly name: string;
  /** Size of a blob the target already holds, or undefined. */
  statBlob(digest: Digest): Promise<number | undefined>;
  /** Store a blob from a local file (the caller computed `digest`); a no-op when present. */
  putBlobFile(path: string, desc: { digest: Digest; size: number }): Promise<void>;
  /** Store a small blob (config). */
  putBlob(bytes: Uint8Array): Promise<{ digest: Digest; size: number }>;
  /**
   * Make `desc`, a blob of `from` (a source, or another target that received it), present here
   * without passing it through this host (a registry's cross-repository mount). False when this
   * target cannot do that for `from`.
   */
  mountBlob?(desc: Descriptor, from: ImageSource | ImageTarget): Promise<boolean>;
  /**
   * Store a manifest and point the target's tag (if any) at it; with `untagged`, only store it (a
   * manifest an index stored later will list). Returns its digest.
   */
  putManifest(bytes: Uint8Array, mediaType: string, opts?: { untagged?: boolean }): Promise<Digest>;
  close(): Promise<void>;
}
