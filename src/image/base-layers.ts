// Before publishing an image that builds on another (commit, record-trace): the target must hold
// the base image's layers. A registry mounts them across repositories without passing them through
// this host; anything else is refused before the slow part of the work starts.

import { DadiError } from '../errors.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';

/** Make every layer of `layers` (blobs of `src`) present in `dst`; `what` names the command in errors. */
export async function ensureBaseLayers(
  dst: ImageTarget,
  src: ImageSource,
  layers: readonly Descriptor[],
  what: string,
): Promise<void> {
  for (const l of layers) {
    if ((await dst.statBlob(l.digest)) !== undefined) continue;
    if (!(await dst.mountBlob?.(l, src))) {
      throw new DadiError(
        'EUNSUPPORTED',
        `${what}: ${dst.name} lacks base layer ${l.digest} and cannot mount it from ${src.name} (push to a repository of the image's registry)`,
      );
    }
  }
}
