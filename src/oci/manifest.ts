// Models of OCI / Docker manifests, indexes and image configs, with a validating parser.
// Parsing checks the shapes we rely on (digests, sizes, media types) and keeps every other field,
// so a manifest re-serialised by a caller loses nothing it did not touch.

import { DadiError } from '../errors.js';
import { type Digest, parseDigest } from './digest.js';
import { isIndexType, isManifestType, MediaType } from './media-types.js';

/** An OCI platform (image-spec `platform`). */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  features?: string[];
}

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  data?: string;
}

/** An image manifest (OCI `application/vnd.oci.image.manifest.v1+json` or Docker schema2). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

/** An index / manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

/** The image config fields dadi reads (the rest is kept as is). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: Record<string, unknown>;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: Array<Record<string, unknown>>;
  [extra: string]: unknown;
}

export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

function bad(what: string, msg: string): DadiError {
  return new DadiError('EFORMAT', `${what}: ${msg}`);
}

function parseJson(bytes: Uint8Array | string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(
      typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'),
    );
  } catch (e) {
    throw bad(what, `not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(what, 'not a JSON object');
  return v as Record<string, unknown>;
}

/** Validate one descriptor in place. */
export function checkDescriptor(v: unknown, what: string): Descriptor {
  if (typeof v !== 'object' || v === null) throw bad(what, 'descriptor is not an object');
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw bad(what, 'descriptor has no mediaType');
  if (typeof d.digest !== 'string') throw bad(what, 'descriptor has no digest');
  parseDigest(d.digest, what);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw bad(what, `descriptor ${d.digest} has a bad size`);
  }
  if (d.annotations !== undefined) {
    if (typeof d.annotations !== 'object' || d.annotations === null) throw bad(what, 'annotations is not an object');
    for (const [k, val] of Object.entries(d.annotations)) {
      if (typeof val !== 'string') throw bad(what, `annotation ${k} is not a string`);
    }
  }
  if (d.platform !== undefined) {
    const p = d.platform as Record<string, unknown>;
    if (typeof p !== 'object' || p === null || typeof p.architecture !== 'string' || typeof p.os !== 'string') {
      throw bad(what, `descriptor ${d.digest} has a bad platform`);
    }
  }
  return d as unknown as Descriptor;
}

/**
 * Parse manifest or index bytes. `headerType` is the Content-Type the registry sent (used when
 * the document has no `mediaType` field, as OCI allows). `what` names the source in errors.
 *
 * ```ts
 * const p = parseManifest(bytes, res.contentType, 'host/repo:tag');
 * if (p.kind === 'index') … else p.manifest.layers
 * ```
 */
export function parseManifest(
  bytes: Uint8Array | string,
  headerType: string | undefined,
  what: string,
): ParsedManifest {
  const o = parseJson(bytes, what);
  if (o.schemaVersion !== 2) throw bad(what, `unsupported schemaVersion ${JSON.stringify(o.schemaVersion)}`);
  const header = headerType?.split(';')[0]?.trim();
  let mediaType = typeof o.mediaType === 'string' ? o.mediaType : undefined;
  if (mediaType && header && (isIndexType(header) || isManifestType(header)) && header !== mediaType) {
    throw bad(what, `mediaType ${mediaType} does not match Content-Type ${header}`);
  }
  mediaType ??= header && (isIndexType(header) || isManifestType(header)) ? header : undefined;
  if (!mediaType) {
    // OCI documents may omit mediaType: decide by shape.
    if (Array.isArray(o.manifests)) mediaType = MediaType.ociIndex;
    else if (o.config !== undefined) mediaType = MediaType.ociManifest;
  }
  if (isIndexType(mediaType)) {
    if (!Array.isArray(o.manifests)) throw bad(what, 'index has no manifests array');
    o.manifests.forEach((d, i) => {
      checkDescriptor(d, `${what}: manifests[${i}]`);
    });
    return { kind: 'index', mediaType: mediaType as string, index: o as unknown as ImageIndex };
  }
  if (isManifestType(mediaType)) {
    checkDescriptor(o.config, `${what}: config`);
    if (!Array.isArray(o.layers)) throw bad(what, 'manifest has no layers array');
    o.layers.forEach((d, i) => {
      checkDescriptor(d, `${what}: layers[${i}]`);
    });
    return { kind: 'manifest', mediaType: mediaType as string, manifest: o as unknown as ImageManifest };
  }
  throw bad(what, `unsupported manifest media type ${JSON.stringify(mediaType ?? headerType ?? '(none)')}`);
}

/** Parse an image config blob. */
export function parseImageConfig(bytes: Uint8Array | string, what: string): ImageConfig {
  const o = parseJson(bytes, what);
  const rootfs = o.rootfs as Record<string, unknown> | undefined;
  if (!rootfs || !Array.isArray(rootfs.diff_ids)) throw bad(what, 'config has no rootfs.diff_ids');
  rootfs.diff_ids.forEach((d, i) => {
    if (typeof d !== 'string') throw bad(what, `rootfs.diff_ids[${i}] is not a string`);
    parseDigest(d, `${what}: rootfs.diff_ids[${i}]`);
  });
  return o as unknown as ImageConfig;
}

/** Serialise a manifest/index/config the way we push it (compact JSON, key order kept). */
export function encodeJson(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc), 'utf8');
}
