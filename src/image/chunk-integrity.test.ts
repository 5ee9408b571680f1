// Loading a layer's chunk digest list from an image source: none without the annotations; the
// list checked against its digest, bounded before fetching and about the right layer; each
// failure a DadiError naming the image and the layer.

import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { type Digest, sha256Of } from '../oci/digest.js';
import type { ImageSource } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';
import {
  ChunkDigestsAnnotation,
  chunkDigestsAnnotations,
  computeChunkDigests,
  encodeChunkDigests,
  MAX_CHUNK_DIGESTS_BYTES,
} from '../p2p/chunk-digests.js';
import { loadChunkDigests } from './chunk-integrity.js';

/** An image source holding `blobs`, counting the blob fetches. */
function memorySource(blobs: Map<string, Buffer>) {
  const fetched: string[] = [];
  const src: ImageSource = {
    name: 'reg.lan/app:v1',
    resolve: () => Promise.reject(new Error('unused')),
    getConfig: () => Promise.reject(new Error('unused')),
    async *blobStream(desc: Descriptor) {
      fetched.push(desc.digest);
      const b = blobs.get(desc.digest);
      if (!b) throw new DadiError('ENOTFOUND', `reg.lan/app@${desc.digest}: blob not found`);
      yield b;
    },
    close: async () => {},
  };
  return { src, fetched };
}

const blob = Buffer.alloc(3 << 20, 7);
const layerDesc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256Of(blob), size: blob.length };
const listBytes = encodeChunkDigests(computeChunkDigests(blob, layerDesc.digest));
const list = { digest: sha256Of(listBytes), size: listBytes.length };
const annotated = (a: Record<string, string>): Descriptor => ({ ...layerDesc, annotations: a });

async function failure(p: Promise<unknown>): Promise<DadiError> {
  const e: DadiError = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (x) => x,
  );
  expect(e).toBeInstanceOf(DadiError);
  expect(e.message).toMatch(/^reg\.lan\/app:v1: /);
  expect(e.message).toContain(layerDesc.digest);
  return e;
}

describe('loadChunkDigests', () => {
  it('is undefined for a layer without the annotations, and loads an annotated one', async () => {
    const { src, fetched } = memorySource(new Map([[list.digest, listBytes]]));
    expect(await loadChunkDigests(src, layerDesc)).toBeUndefined();
    expect(fetched).toEqual([]);
    const got = await loadChunkDigests(src, annotated(chunkDigestsAnnotations(list)));
    expect(got?.blob).toEqual({ digest: layerDesc.digest, size: layerDesc.size });
    expect(got?.digests.length).toBe(3 * 32);
  });

  it('refuses half an annotation pair and an oversized list before fetching anything', async () => {
    const { src, fetched } = memorySource(new Map());
    const half = await failure(loadChunkDigests(src, annotated({ [ChunkDigestsAnnotation.digest]: list.digest })));
    expect(half.code).toBe('EFORMAT');
    const huge = await failure(
      loadChunkDigests(src, annotated(chunkDigestsAnnotations({ ...list, size: MAX_CHUNK_DIGESTS_BYTES + 1 }))),
    );
    expect(huge.code).toBe('ERANGE');
    const notDigest = await failure(
      loadChunkDigests(
        src,
        annotated({ [ChunkDigestsAnnotation.digest]: 'md5:00', [ChunkDigestsAnnotation.size]: String(list.size) }),
      ),
    );
    expect(notDigest.message).toContain(ChunkDigestsAnnotation.digest);
    expect(fetched).toEqual([]);
  });

  it('names a missing list blob, a tampered one and one about another layer', async () => {
    const missing = await failure(
      loadChunkDigests(memorySource(new Map()).src, annotated(chunkDigestsAnnotations(list))),
    );
    expect(missing.code).toBe('ENOTFOUND');
    expect(missing.message).toContain(`chunk digest list ${list.digest}`);

    const tampered = Buffer.from(listBytes);
    tampered[tampered.length - 3] ^= 1;
    const bad = await failure(
      loadChunkDigests(memorySource(new Map([[list.digest, tampered]])).src, annotated(chunkDigestsAnnotations(list))),
    );
    expect(bad.code).toBe('ECORRUPT');

    const other = encodeChunkDigests(computeChunkDigests(blob.subarray(1), sha256Of(blob.subarray(1))));
    const otherDesc = { digest: sha256Of(other) as Digest, size: other.length };
    const foreign = await failure(
      loadChunkDigests(
        memorySource(new Map([[otherDesc.digest, other]])).src,
        annotated(chunkDigestsAnnotations(otherDesc)),
      ),
    );
    expect(foreign.message).toMatch(/describes sha256:/);
  });
});
