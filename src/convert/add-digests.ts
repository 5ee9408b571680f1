// `dadi digests add REF`: give an image converted elsewhere (by the reference tools, or by dadi
// before chunk digests existed) a chunk digest list per layer, as `dadi convert` publishes them:
// each list blob is stored beside the layers, then the manifest, with the annotations added, is
// stored under the same tag. Layers that already have a list keep it. Not for indexes.

import { DadiError } from '../errors.js';
import { chunkDigestsDescriptor } from '../image/chunk-integrity.js';
import { type EndpointOptions, openImageSource, openImageTarget } from '../image/source.js';
import type { Digest } from '../oci/digest.js';
import type { Platform } from '../oci/manifest.js';
import { ChunkHasher, chunkDigestsAnnotations, encodeChunkDigests } from '../p2p/chunk-digests.js';
import { goJson } from './manifest.js';

export interface AddDigestsResult {
  ref: string;
  /** The manifest now under the tag (unchanged when every layer had a list). */
  manifest: { digest: Digest; mediaType: string };
  layers: Array<{ digest: Digest; chunkDigests: { digest: Digest; size: number }; added: boolean }>;
}

/**
 * Add chunk digest lists to the image `spec` (a registry ref or `oci:` layout, by tag).
 * @example const r = await addChunkDigests('reg.lan/app:obd'); console.log(r.manifest.digest);
 */
export async function addChunkDigests(
  spec: string,
  opts: EndpointOptions & { platform?: Platform; signal?: AbortSignal } = {},
): Promise<AddDigestsResult> {
  const src = await openImageSource(spec, opts);
  try {
    const img = await src.resolve({ platform: opts.platform });
    if (img.indexes.length > 0) {
      throw new DadiError(
        'EUNSUPPORTED',
        `${spec}: the tag names a multi-platform index; add digests to each platform's image by its own tag`,
      );
    }
    const dst = await openImageTarget(spec, opts);
    try {
      const layers: AddDigestsResult['layers'] = [];
      for (const l of img.manifest.layers) {
        const had = chunkDigestsDescriptor(l, spec);
        if (had) {
          layers.push({ digest: l.digest, chunkDigests: { digest: had.digest, size: had.size }, added: false });
          continue;
        }
        // The stream checks the layer's digest at its end, so a list is only made of the right bytes.
        const h = new ChunkHasher();
        for await (const c of src.blobStream(l, { signal: opts.signal })) h.update(c);
        const list = await dst.putBlob(encodeChunkDigests(h.finish(l.digest)));
        layers.push({ digest: l.digest, chunkDigests: list, added: true });
      }
      if (!layers.some((l) => l.added)) {
        return { ref: spec, manifest: { digest: img.digest, mediaType: img.mediaType }, layers };
      }
      const doc = JSON.parse(img.bytes.toString('utf8')) as { layers: Array<{ annotations?: Record<string, string> }> };
      doc.layers.forEach((d, i) => {
        const all = { ...d.annotations, ...chunkDigestsAnnotations(layers[i]!.chunkDigests) };
        // Sorted, as Go writes maps (the reference's manifests are Go-written).
        d.annotations = Object.fromEntries(
          Object.keys(all)
            .sort()
            .map((k) => [k, all[k]!]),
        );
      });
      const digest = await dst.putManifest(Buffer.from(goJson(doc), 'utf8'), img.mediaType);
      return { ref: spec, manifest: { digest, mediaType: img.mediaType }, layers };
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}
