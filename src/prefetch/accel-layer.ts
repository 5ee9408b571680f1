// The acceleration layer of the reference's `ctr record-trace` (image-conventions §1.3, §3.9): the
// image's top layer, an uncompressed tar holding one file `trace` (mode 0444, Go archive/tar
// ustar, payload at 512), annotated `containerd.io/snapshot/overlaybd/acceleration-layer: yes`.
// It is never stacked: hosts drop it from the layers and replay its trace. Bytes and descriptors
// only; fetching and publishing are src/image's.

import { MemoryFile } from '../blockfile/memory.js';
import { DadiError } from '../errors.js';
import { detectTar, goSingleFileTar } from '../format/tar/index.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { MediaType, OverlaybdAnnotation, OverlaybdVersion } from '../oci/media-types.js';
import { decodeTrace, isTrace, type TraceRecord } from './trace-format.js';
import { TRACE_BLOB_RANGES_ANNOTATION } from './trace-ranges.js';

/** The member name of the trace in the layer. */
export const ACCEL_TRACE_NAME = 'trace';
/** Largest acceleration layer a host fetches (a trace of MAX_TRACE_RECORDS is 24 MiB). */
export const MAX_ACCEL_LAYER_BYTES = 32 << 20;

/** True for the acceleration layer's descriptor. */
export function isAccelerationLayer(d: Pick<Descriptor, 'annotations'>): boolean {
  return d.annotations?.[OverlaybdAnnotation.accelerationLayer] === 'yes';
}

/** An image's layers split into the ones to stack and, when the top one is, the acceleration layer. */
export function splitAccelerationLayer<T extends Pick<Descriptor, 'annotations'>>(
  layers: readonly T[],
): { lowers: T[]; accel?: T } {
  const top = layers[layers.length - 1];
  if (top && isAccelerationLayer(top)) return { lowers: layers.slice(0, -1), accel: top };
  return { lowers: [...layers] };
}

/** The layer blob holding `trace` (a tar that is its own diff_id: it is not compressed). */
export function accelerationLayerBlob(trace: Uint8Array): Uint8Array {
  return goSingleFileTar(ACCEL_TRACE_NAME, trace, { mode: 0o444 });
}

/**
 * The layer's descriptor as the reference's content loader writes it: OCI tar media type, the
 * overlaybd version/blob-digest/blob-size annotations, `acceleration-layer: yes`, and the base
 * image's top-layer `blob-fs-type` when it has one (keys sorted, as Go writes maps).
 */
export function accelerationLayerDescriptor(
  blob: { digest: Digest; size: number },
  fsType?: string,
  /** The replay's blob ranges (trace-ranges.ts), a dadi annotation the reference ignores. */
  blobRanges?: string,
): Descriptor {
  const a: Record<string, string> = {
    [OverlaybdAnnotation.accelerationLayer]: 'yes',
    [OverlaybdAnnotation.blobDigest]: blob.digest,
    [OverlaybdAnnotation.blobSize]: String(blob.size),
    [OverlaybdAnnotation.version]: OverlaybdVersion.native,
  };
  if (fsType) a[OverlaybdAnnotation.fsType] = fsType;
  if (blobRanges) a[TRACE_BLOB_RANGES_ANNOTATION] = blobRanges;
  const annotations: Record<string, string> = {};
  for (const k of Object.keys(a).sort()) annotations[k] = a[k]!;
  return { mediaType: MediaType.ociLayer, digest: blob.digest, size: blob.size, annotations };
}

/**
 * The trace records of an acceleration layer blob. EFORMAT if it is not a tar of `trace`,
 * EUNSUPPORTED for a priority list (paths instead of a binary trace), and the trace codec's
 * errors (bad checksum: ECORRUPT) naming `name`.
 */
export async function traceOfAccelerationLayer(blob: Uint8Array, name: string): Promise<TraceRecord[]> {
  const tar = await detectTar(new MemoryFile(blob, name));
  if (!tar || tar.memberName !== ACCEL_TRACE_NAME) {
    throw new DadiError(
      'EFORMAT',
      `${name}: acceleration layer: not a tar whose first member is "${ACCEL_TRACE_NAME}"`,
    );
  }
  const trace = blob.subarray(tar.payloadOffset, tar.payloadOffset + tar.payloadSize);
  if (trace.length > 0 && !isTrace(trace)) {
    throw new DadiError('EUNSUPPORTED', `${name}: acceleration layer holds a priority list (file paths), not a trace`);
  }
  return decodeTrace(trace, name);
}
