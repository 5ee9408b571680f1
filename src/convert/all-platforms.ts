// `convert --all-platforms`: every platform image of a source index converted, one convertImage
// each (sharing the work folder, so layers two platforms have in common convert once), then one
// index listing the converted manifests with their source platforms, stored under the target's tag.
// The per-platform manifests are stored untagged: the tag moves only once every platform converted.

import { DadiError } from '../errors.js';
import { type EndpointOptions, openImageSource, openImageTarget } from '../image/source.js';
import type { Digest } from '../oci/digest.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { type ConvertOptions, type ConvertResult, convertImage } from './convert.js';
import { clock } from './progress.js';

export interface AllPlatformsResult {
  source: string;
  target: string;
  /** The converted index the target's tag now names. */
  index: { digest: Digest; size: number; mediaType: string };
  /** One conversion per platform, in the source index's order. */
  images: ConvertResult[];
  seconds: number;
}

/**
 * Convert every platform image of the index `source` names into an index at `target`.
 * @example const r = await convertAllPlatforms('oci:./hello:multi-arch', 'oci:./out:obd', { oci: true });
 */
export async function convertAllPlatforms(
  source: string,
  target: string,
  opts: Omit<ConvertOptions, 'platform' | 'manifest' | 'untagged'> & EndpointOptions = {},
): Promise<AllPlatformsResult> {
  const started = clock();
  const src = await openImageSource(source, opts);
  let dst: ImageTarget | undefined;
  try {
    const entries = await platformEntries(src);
    dst = await openImageTarget(target, opts);
    const images: ConvertResult[] = [];
    const listed: Descriptor[] = [];
    for (const d of entries) {
      const r = await convertImage(src, dst, { ...opts, manifest: d.digest, untagged: true });
      images.push(r);
      listed.push({
        mediaType: r.manifest.mediaType,
        digest: r.manifest.digest,
        size: r.manifest.size,
        platform: d.platform!,
      });
    }
    const mediaType = opts.oci ? MediaType.ociIndex : MediaType.dockerManifestList;
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: listed }));
    const digest = await dst.putManifest(bytes, mediaType);
    return {
      source: src.name,
      target: dst.name,
      index: { digest, size: bytes.length, mediaType },
      images,
      seconds: clock() - started,
    };
  } finally {
    await dst?.close();
    await src.close();
  }
}

async function platformEntries(src: ImageSource): Promise<Descriptor[]> {
  const entries = (await src.platformImages?.()) ?? [];
  if (entries.length === 0)
    throw new DadiError('EINVAL', `${src.name}: not a multi-platform index; convert it without --all-platforms`);
  return entries;
}
