// Fetching source layers for conversion. From a registry, layers download ahead (a few at once, in
// layer order) into the scratch folder while earlier layers convert; a layout's blobs are read in
// place. Either way each layer reaches the converter as its tar (unpack.ts), its digest checked.

import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImageSource } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';
import { bounded } from '../util/bounded.js';
import { layerLabel, withLabel } from './layer-label.js';
import { clock } from './progress.js';
import { type LayerTar, unpackLayerFile, unpackStream } from './unpack.js';

export interface DownloadOptions {
  /** Downloads at once (at least 1). */
  limit: number;
  /** Skip layer i (already converted). */
  skip: (i: number) => boolean;
  signal: AbortSignal;
  /** Layer i is on disk after `seconds`. */
  done: (i: number, seconds: number) => void;
}

/**
 * Start downloading `layers` of `src` into `scratch` (nothing for sources with local blob files).
 * Returns one promise per layer: the downloaded file's path, or undefined when the converter should
 * read the source directly (`layerStream`). Rejections carry the layer's name; callers must
 * observe every promise.
 */
export function startDownloads(
  src: ImageSource,
  layers: readonly Descriptor[],
  scratch: string,
  opts: DownloadOptions,
): Promise<string | undefined>[] {
  const local = typeof src.localBlobPath === 'function';
  const n = layers.length;
  return bounded(layers, Math.max(1, opts.limit), async (d, i) => {
    if (opts.skip(i) || local) return undefined;
    opts.signal.throwIfAborted();
    const t = clock();
    const path = join(scratch, `${i}.src`);
    try {
      await pipeline(Readable.from(src.blobStream(d, { signal: opts.signal })), createWriteStream(path), {
        signal: opts.signal,
      });
    } catch (e) {
      throw withLabel(e, `${src.name}: ${layerLabel(i, n, d)}`, d.digest);
    }
    opts.done(i, clock() - t);
    return path;
  });
}

/**
 * The layer's tar: from its downloaded file or the source's own blob file (checked against the
 * descriptor), decoded on a worker thread; else streamed (digest-checked) from the source.
 */
export function layerTar(
  src: ImageSource,
  d: Descriptor,
  downloaded: string | undefined,
  name: string,
  signal: AbortSignal,
): LayerTar {
  if (downloaded) return unpackLayerFile(downloaded, name);
  const local = src.localBlobPath?.(d);
  // A missing blob file: the source's stream names the problem its own way.
  if (local && existsSync(local)) return unpackLayerFile(local, name, { digest: d.digest, size: d.size });
  return unpackStream(src.blobStream(d, { signal }), name);
}
