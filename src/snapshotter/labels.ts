// The snapshot labels containerd passes to a remote snapshotter, and how a DADI layer is
// recognised from them: containerd copies every layer annotation under `containerd.io/snapshot/`
// into the Prepare labels, so the overlaybd annotations of a converted image arrive here, and the
// image reference comes from `dadi pull` (or CRI) in `…/image-ref` / `…/cri.image-ref`.

import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { DadiError } from '../errors.js';
import { OverlaybdAnnotation, OverlaybdVersion } from '../oci/index.js';
import { parseReference } from '../registry/index.js';
import type { RemoteLayer, SnapshotTrace } from './store.js';

export const Label = {
  /** Set by containerd's unpacker: the chain id the layer snapshot is to be committed as. */
  targetRef: 'containerd.io/snapshot.ref',
  imageRef: 'containerd.io/snapshot/image-ref',
  criImageRef: 'containerd.io/snapshot/cri.image-ref',
  /** Set on snapshots committed without their data (the reference's value). */
  remote: 'containerd.io/snapshot/remote',
  /**
   * Ours, set by `dadi pull` on an image's top layer: mount the image's stack as soon as the layer
   * is committed (as stargz mounts its layers at pull time), so a container's Prepare finds it ready.
   */
  mountAhead: 'containerd.io/snapshot/dadi.mount-ahead',
  /** The reference's record-trace labels on a container's snapshot: `yes`, and the trace file. */
  recordTrace: 'containerd.io/snapshot/overlaybd/record-trace',
  recordTracePath: 'containerd.io/snapshot/overlaybd/record-trace-path',
  /** Per snapshot: `dir` = writable block layer mounted as the rootfs, `overlayfs` = upper directory. */
  writable: 'containerd.io/snapshot/overlaybd.writable',
} as const;

/**
 * The DADI layer a Prepare's labels describe, or undefined for an ordinary layer. An acceleration
 * layer is one too: committed without data, its trace fetched when the image is mounted. Layers
 * that are not native LSMT layers (TurboOCI, the legacy FastOCI) and layers with no image
 * reference cannot be read lazily here: they are unpacked like any other.
 */
export function remoteLayerOf(labels: Record<string, string>): RemoteLayer | undefined {
  const version = labels[OverlaybdAnnotation.version];
  if (version !== undefined && version !== OverlaybdVersion.native) return undefined;
  const digest = labels[OverlaybdAnnotation.blobDigest];
  const sizeText = labels[OverlaybdAnnotation.blobSize];
  const image = labels[Label.imageRef] ?? labels[Label.criImageRef];
  if (!digest || !sizeText || !image) return undefined;
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
    throw new DadiError('EINVAL', `snapshot label ${OverlaybdAnnotation.blobDigest}: not a sha256 digest: ${digest}`);
  }
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new DadiError('EINVAL', `snapshot label ${OverlaybdAnnotation.blobSize}: not a size: ${sizeText}`);
  }
  const ref = parseReference(image);
  const layer: RemoteLayer = { registry: ref.registry, repository: ref.repository, digest, size };
  if (labels[OverlaybdAnnotation.accelerationLayer] === 'yes') layer.acceleration = true;
  return layer;
}

/**
 * The trace a container's Prepare asks for with the record-trace labels: an absent or empty file
 * is recorded into (written when the container's snapshot is removed), a non-empty one replayed,
 * as the reference's overlaybd does. Undefined without the labels.
 */
export async function traceOf(labels: Record<string, string>): Promise<SnapshotTrace | undefined> {
  if (labels[Label.recordTrace] !== 'yes') return undefined;
  const path = labels[Label.recordTracePath];
  if (!path || !isAbsolute(path)) {
    throw new DadiError(
      'EINVAL',
      `snapshot label ${Label.recordTracePath}: an absolute path is needed, not ${JSON.stringify(path ?? '')}`,
    );
  }
  const st = await stat(path).catch(() => undefined);
  if (st && !st.isFile())
    throw new DadiError('EINVAL', `snapshot label ${Label.recordTracePath}: ${path} is not a file`);
  return { mode: st && st.size > 0 ? 'replay' : 'record', path };
}
