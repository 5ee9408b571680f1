// Before publishing an image that builds on another (commit, record-trace): the target must hold
// the base image's layers. A registry mounts them across repositories without passing them through
// this host; anything else is refused before the slow part of the work starts. Each layer's chunk
// digest list (image/chunk-integrity.ts) comes along, so the annotations pointing at it hold.

import { DadiError } from '../errors.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';
import { chunkDigestsDescriptor } from './chunk-integrity.js';

/**
 * Make every layer of `layers` (blobs of `src`), and its chunk digest list, present in `dst`;
 * `what` names the command in errors.
 */
export async function ensureBaseLayers(
  dst: ImageTarget,
  src: ImageSource,
  layers: readonly Descriptor[],
  what: string,
): Promise<void> {
  const blobs = layers.flatMap((l) => {
    const layer = { blob: l, label: `base layer ${l.digest}` };
    const list = chunkDigestsDescriptor(l, src.name);
    return list
      ? [layer, { blob: list, label: `chunk digest list ${list.digest} of base layer ${l.digest}` }]
      : [layer];
  });
  for (const { blob, label } of blobs) {
    if ((await dst.statBlob(blob.digest)) !== undefined) continue;
    if (!(await dst.mountBlob?.(blob, src))) {
      throw new DadiError(
        'EUNSUPPORTED',
        `${what}: ${dst.name} lacks ${label} and cannot mount it from ${src.name} (push to a repository of the image's registry)`,
      );
    }
  }
}
