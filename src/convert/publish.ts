// Publishing a DADI image to an ImageTarget, shared by convert and commit: layer blobs go up as
// soon as each is ready (while the next one is made), each with its chunk digest list (for peers'
// chunks to be checked against; p2p/chunk-digests.ts), then the config, then the manifest — only
// the manifest makes the image visible under the target's tag, so a failure before it leaves the
// tag untouched (uploaded blobs stay, unreferenced, for the registry's garbage collector).

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { DadiError } from '../errors.js';
import { readyCompressPool } from '../format/zfile/compress-pool.js';
import { type Digest, Digester } from '../oci/digest.js';
import type { ImageTarget } from '../oci/image-source.js';
import type { ImageConfig } from '../oci/manifest.js';
import { type ChunkDigests, ChunkHasher, encodeChunkDigests } from '../p2p/chunk-digests.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { withLabel } from './layer-label.js';
import { type ConvertedLayer, convertedConfig, convertedManifest, outputMediaTypes } from './manifest.js';
import { clock } from './progress.js';

export interface PublishedImage {
  config: { digest: Digest; size: number };
  manifest: { digest: Digest; size: number; mediaType: string };
}

/**
 * Store the image config (`config` with `layers` as its diff_ids) and then the manifest, in
 * Docker media types or, with `oci`, OCI ones; with `untagged`, the target's tag stays where it is.
 * The layer blobs must be in the target already.
 */
export async function publishImage(
  dst: ImageTarget,
  config: ImageConfig,
  layers: readonly ConvertedLayer[],
  opts: { oci: boolean; annotations?: Record<string, string>; untagged?: boolean },
): Promise<PublishedImage> {
  const configBytes = convertedConfig(
    config,
    layers.map((l) => l.digest),
  );
  const configDesc = await dst.putBlob(configBytes);
  const manifestBytes = convertedManifest(configDesc, layers, opts);
  const mediaType = outputMediaTypes(opts.oci).manifest;
  const digest = await dst.putManifest(manifestBytes, mediaType, { untagged: opts.untagged });
  return { config: configDesc, manifest: { digest, size: manifestBytes.length, mediaType } };
}

/**
 * Upload the layer blob at `path` (digest and size `layer`) with its chunk digest list (`chunks`,
 * or hashed from the file); returns the list's blob, for the layer descriptor's annotations. Both
 * are no-ops when the target has them.
 */
export async function putLayerBlob(
  dst: ImageTarget,
  path: string,
  layer: { digest: Digest; size: number },
  chunks?: ChunkDigests,
): Promise<{ digest: Digest; size: number }> {
  const [, list] = await Promise.all([dst.putBlobFile(path, layer), chunks ?? chunkDigestsOfFile(path, layer.digest)]);
  return dst.putBlob(encodeChunkDigests(list));
}

async function chunkDigestsOfFile(path: string, digest: Digest) {
  const h = new ChunkHasher();
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.finish(digest);
}

/**
 * A new layer blob's sha256, size and chunk digest list, from one read of the file (its header is
 * written last, so nothing can be hashed while it is written). The chunks are hashed meanwhile on
 * a compression worker when one is ready (a conversion's are idle by now), reading the file
 * themselves, so that this step of the conversion's serial tail takes one pass instead of two.
 * One buffer serves every read: a fresh one per read costs page faults and garbage collections
 * on a blob of hundreds of MB.
 */
export async function digestLayerFile(path: string): Promise<ChunkDigests> {
  const onWorker = readyCompressPool()?.hashFileChunks(path, CHUNK_SIZE);
  onWorker?.catch(() => {}); // awaited below; this only keeps an early failure from being 'unhandled'
  const whole = new Digester();
  const chunks = onWorker ? undefined : new ChunkHasher();
  const buf = Buffer.allocUnsafeSlow(4 << 20);
  const fh = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const piece = buf.subarray(0, bytesRead);
      whole.update(piece);
      chunks?.update(piece);
    }
  } finally {
    await fh.close();
  }
  const digest = whole.digest();
  if (chunks) return chunks.finish(digest);
  const hashed = await onWorker!;
  if (hashed.size !== whole.size) {
    throw new DadiError('EIO', `${path}: changed while it was hashed (${whole.size} bytes, then ${hashed.size})`);
  }
  return { blob: { digest, size: whole.size }, chunkSize: CHUNK_SIZE, digests: hashed.digests };
}

/**
 * Layer uploads running in the background, each with its chunk digest list (putLayerBlob). The
 * first failure is kept and reported (it aborts the caller's work through `onError`), whatever
 * fails after it.
 */
export class LayerUploads {
  private readonly running: Promise<void>[] = [];
  /** The first upload failure, if any. */
  error: unknown;

  constructor(
    private readonly dst: ImageTarget,
    private readonly onError: (e: unknown) => void,
  ) {}

  /**
   * Upload the file at `path` as blob `desc` with its chunk digest list (`chunks`, or hashed from
   * the file); errors name `label`; `done` gets the seconds taken and the list's blob.
   */
  add(
    path: string,
    desc: { digest: Digest; size: number },
    label: string,
    done: (seconds: number, chunkDigests: { digest: Digest; size: number }) => void,
    chunks?: ChunkDigests,
  ): void {
    const up = (async () => {
      const t = clock();
      let list: { digest: Digest; size: number };
      try {
        list = await putLayerBlob(this.dst, path, desc, chunks);
      } catch (e) {
        throw withLabel(e, `${this.dst.name}: upload of ${label}`, desc.digest);
      }
      done(clock() - t, list);
    })();
    up.catch((e) => {
      this.error ??= e;
      this.onError(e);
    });
    this.running.push(up);
  }

  /** Every upload finished; throws the first failure. */
  async done(): Promise<void> {
    await Promise.all(this.running);
  }

  /** Every upload settled, successes and failures alike (for cleaning up after a failure). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.running);
  }
}
