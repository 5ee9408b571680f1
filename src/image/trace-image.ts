// Publish an image with a trace, as the reference's `ctr record-trace` lays it out (image-conventions
// §1.3–1.4): the base image's layers unchanged plus the acceleration layer on top; the config
// re-serialised the Go way (indented by three spaces) with the layer's diff_id appended, a history
// entry "Acceleration Layer" prepended and `created` reset; the manifest in the base's media type.
// Through the same ImageSource/ImageTarget as convert and commit. Not the recording (runtime/).

import type { SliceFile } from '../blockfile/range.js';
import { goDescriptor, goImage, goJson } from '../convert/manifest.js';
import { DadiError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor, ImageConfig } from '../oci/manifest.js';
import { MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import { accelerationLayerBlob, accelerationLayerDescriptor, isAccelerationLayer } from '../prefetch/accel-layer.js';
import { decodeTrace, type TraceRecord } from '../prefetch/trace-format.js';
import { blobRangesOf, encodeBlobRanges } from '../prefetch/trace-ranges.js';
import { parseReference } from '../registry/reference.js';
import { RemoteBlob } from '../registry/remote-blob.js';
import { ensureBaseLayers } from './base-layers.js';
import { unwrapBlob } from './open-layer.js';
import type { RemoteContext } from './remote-context.js';
import { openImageSource, openImageTarget } from './source.js';

export interface PublishedTraceImage {
  ref: string;
  manifestDigest: Digest;
  layer: { digest: Digest; size: number };
}

/**
 * Push `target` = the image `base` plus an acceleration layer holding `trace` (an overlaybd trace
 * file, validated first). Refuses a base that already has one, as the reference does.
 *
 * @example await publishTraceImage('reg/app:v1', 'reg/app:v1-trace', traceBytes, ctx);
 */
export async function publishTraceImage(
  base: string,
  target: string,
  trace: Uint8Array,
  ctx: Pick<RemoteContext, 'client' | 'platform'>,
  opts: { now?: Date } = {},
): Promise<PublishedTraceImage> {
  decodeTrace(trace, `trace for ${target}`);
  const src = await openImageSource(base, { client: ctx.client });
  try {
    const resolved = await src.resolve({ platform: ctx.platform });
    const layers = resolved.manifest.layers;
    const top = layers[layers.length - 1];
    if (!top) throw new DadiError('EFORMAT', `${base}: image has no layers`);
    if (isAccelerationLayer(top)) throw new DadiError('EEXIST', `${base}: the image already has an acceleration layer`);
    const { config } = await src.getConfig(resolved.manifest.config);
    const dst = await openImageTarget(target, { client: ctx.client });
    try {
      await ensureBaseLayers(dst, src, layers, `record-trace ${target}`);
      const blob = accelerationLayerBlob(trace);
      const layer = await dst.putBlob(blob);
      const ranges = await traceBlobRanges(base, layers, decodeTrace(trace, `trace for ${target}`), ctx);
      const accel = accelerationLayerDescriptor(layer, top.annotations?.[OverlaybdAnnotation.fsType], ranges);
      const configBytes = traceImageConfig(config, layer.digest, opts.now ?? new Date());
      const configDesc = await dst.putBlob(configBytes);
      const mediaType = resolved.mediaType;
      const configMediaType =
        resolved.manifest.config.mediaType ??
        (mediaType === MediaType.ociManifest ? MediaType.ociConfig : MediaType.dockerConfig);
      // The reference marshals struct{ocispec.Manifest; MediaType}: the outer mediaType comes last.
      const manifest = {
        schemaVersion: 2,
        config: {
          mediaType: configMediaType,
          digest: configDesc.digest,
          size: configDesc.size,
          ...embeddedData(configBytes),
        },
        layers: [...layers.map(goDescriptor), goDescriptor(accel)],
        ...(resolved.manifest.annotations ? { annotations: resolved.manifest.annotations } : {}),
        mediaType,
      };
      const manifestBytes = Buffer.from(goJson(manifest, '   '), 'utf8');
      const manifestDigest = await dst.putManifest(manifestBytes, mediaType);
      return { ref: target, manifestDigest, layer };
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/** Configs up to this size travel inside the manifest (a Python image's is ~3 KB). */
export const MAX_EMBEDDED_CONFIG_BYTES = 16 * 1024;

/**
 * The config's bytes as the descriptor's `data` (OCI image-spec 1.1: embedded content, which a
 * client checks against the digest and may use instead of fetching): a traced start then has its
 * config with the manifest, one round trip before its GET would bring it (the resolve's answer, and
 * so the mount, waited for that GET: 65 ms of a start at 50 ms RTT). Go's field order puts it
 * after size. Clients that do not know the field ignore it (json.Unmarshal), Docker media types too.
 */
function embeddedData(bytes: Uint8Array): { data?: string } {
  return bytes.length <= MAX_EMBEDDED_CONFIG_BYTES ? { data: Buffer.from(bytes).toString('base64') } : {};
}

/**
 * The blob ranges the trace's replay fetches (prefetch/trace-ranges.ts), for the acceleration
 * layer's annotation; undefined when the base is not in a registry or a layer cannot be read
 * (the annotation is only a head start: the trace works without it).
 */
async function traceBlobRanges(
  base: string,
  layers: readonly Descriptor[],
  records: readonly TraceRecord[],
  ctx: Pick<RemoteContext, 'client'>,
): Promise<string | undefined> {
  try {
    const r = parseReference(base);
    const stored = await Promise.all(
      layers.map(async (d) => {
        const raw = await RemoteBlob.open(ctx.client, r, d.digest, { size: d.size });
        const { tar, zfile } = await unwrapBlob(raw);
        const start = tar ? (tar as SliceFile).start : 0;
        const span = (o: number, c: number): readonly [number, number] => {
          const [a, b] = zfile ? zfile.storedSpan(o, c) : [o, o + c];
          return [start + a, start + b];
        };
        return { span };
      }),
    );
    const ranges = blobRangesOf(records, stored);
    return ranges && encodeBlobRanges(ranges);
  } catch {
    return undefined;
  }
}

/** The config of the traced image (what createImageWithAccelLayer writes). */
export function traceImageConfig(config: ImageConfig, accelDiffId: Digest, now: Date): Buffer {
  const created = now.toISOString();
  const history = [
    { created, created_by: 'Acceleration Layer' },
    ...(Array.isArray(config.history) ? config.history : []),
  ];
  const diffIds = [...(config.rootfs?.diff_ids ?? []), accelDiffId] as Digest[];
  return Buffer.from(goJson(goImage({ ...config, created, history }, diffIds), '   '), 'utf8');
}
