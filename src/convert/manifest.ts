// What the reference convertor writes around the converted layers (image-conventions §1, §2.1):
// chainIDs and the layer uuids derived from them, the image config re-serialised the way Go's
// encoding/json writes image-spec's `Image` struct (unknown fields dropped, history kept,
// diff_ids replaced), and the manifest with the overlaybd layer annotations.

import { createHash } from 'node:crypto';
import { type Digest, digestHex, sha256Of } from '../oci/digest.js';
import type { Descriptor, ImageConfig } from '../oci/manifest.js';
import { MediaType, OverlaybdAnnotation, OverlaybdVersion } from '../oci/media-types.js';
import { chunkDigestsAnnotations } from '../p2p/chunk-digests.js';

/**
 * chainIDs of a diff_id list (image-spec): chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i]).
 * @example chainIds(['sha256:a…', 'sha256:b…'])
 */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}

/** The layer uuid the reference derives from a chainID: its first 32 hex digits as 8-4-4-4-12. */
export function uuidFromChainId(chainId: Digest): string {
  const h = digestHex(chainId);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * JSON as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped. Key order is
 * the caller's (build objects in struct-field order; sort map keys).
 */
export function goJson(value: unknown, indent?: string): string {
  return JSON.stringify(value, null, indent).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/;

/** A timestamp as Go's time.Time re-marshals it (RFC3339Nano: trailing zeros cut, zero offset → Z). */
export function goTime(s: string): string {
  const m = RFC3339.exec(s);
  if (!m) return s;
  const frac = (m[2] ?? '').slice(0, 9).replace(/0+$/, '');
  const zone = m[3] === '+00:00' || m[3] === '-00:00' ? 'Z' : m[3];
  return `${m[1]}${frac ? `.${frac}` : ''}${zone}`;
}

type Obj = Record<string, unknown>;

function sortedMap(v: unknown, value: (x: unknown) => unknown): Obj | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v).sort();
  if (keys.length === 0) return undefined; // omitempty
  const out: Obj = {};
  for (const k of keys) out[k] = value((v as Obj)[k]);
  return out;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function strList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.length > 0 ? v.map((x) => (typeof x === 'string' ? x : String(x))) : undefined;
}

/** Put the defined entries of `pairs` into an object, in order. */
function fields(pairs: Array<[string, unknown]>): Obj {
  const out: Obj = {};
  for (const [k, v] of pairs) if (v !== undefined) out[k] = v;
  return out;
}

/** image-spec v1.1 `ImageConfig` (the `config` member), omitempty everywhere. */
function goImageConfig(c: unknown): Obj {
  const o = (typeof c === 'object' && c !== null ? c : {}) as Obj;
  return fields([
    ['User', str(o.User)],
    ['ExposedPorts', sortedMap(o.ExposedPorts, () => ({}))],
    ['Env', strList(o.Env)],
    ['Entrypoint', strList(o.Entrypoint)],
    ['Cmd', strList(o.Cmd)],
    ['Volumes', sortedMap(o.Volumes, () => ({}))],
    ['WorkingDir', str(o.WorkingDir)],
    ['Labels', sortedMap(o.Labels, (x) => (typeof x === 'string' ? x : String(x)))],
    ['StopSignal', str(o.StopSignal)],
    ['ArgsEscaped', o.ArgsEscaped === true ? true : undefined],
  ]);
}

function goHistory(h: unknown): Obj {
  const o = (typeof h === 'object' && h !== null ? h : {}) as Obj;
  return fields([
    ['created', typeof o.created === 'string' ? goTime(o.created) : undefined],
    ['created_by', str(o.created_by)],
    ['author', str(o.author)],
    ['comment', str(o.comment)],
    ['empty_layer', o.empty_layer === true ? true : undefined],
  ]);
}

/**
 * The converted image config: the source config through image-spec's `Image` struct (fields in
 * struct order; Docker-only fields such as `container_config` dropped), `rootfs.diff_ids` = the
 * converted layer digests, history unchanged.
 */
export function convertedConfig(src: ImageConfig, diffIds: readonly Digest[]): Buffer {
  return Buffer.from(goJson(goImage(src, diffIds)), 'utf8');
}

/** An image config as Go's image-spec `Image` struct holds it (see convertedConfig), to marshal. */
export function goImage(src: ImageConfig, diffIds: readonly Digest[]): Record<string, unknown> {
  return fields([
    ['created', typeof src.created === 'string' ? goTime(src.created) : undefined],
    ['author', str(src.author)],
    ['architecture', typeof src.architecture === 'string' ? src.architecture : ''],
    ['os', typeof src.os === 'string' ? src.os : ''],
    ['os.version', str(src['os.version'])],
    ['os.features', strList(src['os.features'])],
    ['variant', str(src.variant)],
    ['config', goImageConfig(src.config)],
    ['rootfs', { type: 'layers', diff_ids: [...diffIds] }],
    ['history', Array.isArray(src.history) && src.history.length > 0 ? src.history.map(goHistory) : undefined],
  ]);
}

/** A descriptor as image-spec's `Descriptor` struct marshals it (field order, annotation keys sorted). */
export function goDescriptor(d: Descriptor): Record<string, unknown> {
  return fields([
    ['mediaType', d.mediaType],
    ['digest', d.digest],
    ['size', d.size],
    ['urls', strList(d.urls)],
    ['annotations', sortedMap(d.annotations, (x) => x)],
    ['platform', d.platform],
    ['artifactType', str(d.artifactType)],
  ]);
}

export interface ConvertedLayer {
  digest: Digest;
  size: number;
  /** The layer's chunk digest list blob (p2p/chunk-digests.ts), annotated on its descriptor. */
  chunkDigests?: { digest: Digest; size: number };
}

/** Media types of the output (§1.2): Docker by default, OCI with `oci`. */
export function outputMediaTypes(oci: boolean): { manifest: string; config: string; layer: string } {
  return oci
    ? { manifest: MediaType.ociManifest, config: MediaType.ociConfig, layer: MediaType.ociLayer }
    : { manifest: MediaType.dockerManifest, config: MediaType.dockerConfig, layer: MediaType.dockerLayer };
}

/**
 * A converted layer's descriptor with the overlaybd annotations and, when it has one, dadi's
 * pointer to its chunk digest list (keys sorted, as Go writes maps: `containerd.io/…` < `io.dadi.…`).
 */
export function layerDescriptor(layer: ConvertedLayer, mediaType: string): Descriptor {
  return {
    mediaType,
    digest: layer.digest,
    size: layer.size,
    annotations: {
      [OverlaybdAnnotation.blobDigest]: layer.digest,
      [OverlaybdAnnotation.blobSize]: String(layer.size),
      [OverlaybdAnnotation.version]: OverlaybdVersion.native,
      ...(layer.chunkDigests ? chunkDigestsAnnotations(layer.chunkDigests) : {}),
    },
  };
}

/**
 * The converted manifest (image-spec `Manifest` field order: schemaVersion, mediaType, config,
 * layers, annotations). Source manifest annotations are kept.
 */
export function convertedManifest(
  config: { digest: Digest; size: number },
  layers: readonly ConvertedLayer[],
  opts: { oci: boolean; annotations?: Record<string, string> },
): Buffer {
  const types = outputMediaTypes(opts.oci);
  const doc = fields([
    ['schemaVersion', 2],
    ['mediaType', types.manifest],
    ['config', { mediaType: types.config, digest: config.digest, size: config.size }],
    ['layers', layers.map((l) => layerDescriptor(l, types.layer))],
    ['annotations', opts.annotations ? sortedMap(opts.annotations, (x) => x) : undefined],
  ]);
  return Buffer.from(goJson(doc), 'utf8');
}

export { sha256Of };
