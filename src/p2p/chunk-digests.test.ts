// The chunk digest list codec: each entry is the sha256 of its chunk of the blob, the bytes are the
// same for the same blob, streaming in any piece sizes gives the same list, and a reader rejects
// every malformed or foreign list with an error naming where it came from.

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TEST_SEED } from '../../test/seed.js';
import { patternBytes } from '../cache/testing.js';
import { DadiError } from '../errors.js';
import { sha256Of } from '../oci/digest.js';
import {
  CHUNK_DIGESTS_MEDIA_TYPE,
  ChunkHasher,
  computeChunkDigests,
  decodeChunkDigests,
  encodeChunkDigests,
  MAX_CHUNK_DIGESTS_BYTES,
} from './chunk-digests.js';
import { CHUNK_SIZE } from './chunks.js';

const blob = patternBytes(2 * CHUNK_SIZE + 12345, TEST_SEED + 1);
const blobDigest = sha256Of(blob);

function reject(bytes: Uint8Array | string, forBlob?: { digest: typeof blobDigest; size: number }): DadiError {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  let err: unknown;
  try {
    decodeChunkDigests(b, 'reg/app@layer', forBlob);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DadiError);
  expect((err as DadiError).message).toMatch(/^reg\/app@layer: /);
  return err as DadiError;
}

describe('chunk digest list', () => {
  it('lists the sha256 of every 1 MiB chunk of the blob, the last one short', () => {
    const list = computeChunkDigests(blob, blobDigest);
    const doc = JSON.parse(encodeChunkDigests(list).toString());
    expect(doc).toEqual({
      mediaType: CHUNK_DIGESTS_MEDIA_TYPE,
      algorithm: 'sha256',
      chunkSize: CHUNK_SIZE,
      blob: { digest: blobDigest, size: blob.length },
      chunks: [0, 1, 2].map((i) =>
        createHash('sha256')
          .update(blob.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))
          .digest('hex'),
      ),
    });
    expect(Object.keys(doc)).toEqual(['mediaType', 'algorithm', 'chunkSize', 'blob', 'chunks']);
  });

  it('gives the same bytes whatever pieces the blob is streamed in', () => {
    const whole = encodeChunkDigests(computeChunkDigests(blob, blobDigest));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3 * CHUNK_SIZE }), { minLength: 1, maxLength: 6 }), (cuts) => {
        const h = new ChunkHasher();
        let p = 0;
        for (const c of cuts) {
          h.update(blob.subarray(p, p + c));
          p += c;
        }
        h.update(blob.subarray(p));
        expect(encodeChunkDigests(h.finish(blobDigest)).equals(whole)).toBe(true);
      }),
      { numRuns: 20 },
    );
  });

  it('decodes what it encodes, for the blob it describes', () => {
    const list = computeChunkDigests(blob, blobDigest, 64 << 10);
    const back = decodeChunkDigests(encodeChunkDigests(list), 'x', { digest: blobDigest, size: blob.length });
    expect(back.chunkSize).toBe(64 << 10);
    expect(Buffer.from(back.digests).equals(Buffer.from(list.digests))).toBe(true);
    const empty = computeChunkDigests(Buffer.alloc(0), sha256Of(''));
    expect(decodeChunkDigests(encodeChunkDigests(empty), 'x').digests.length).toBe(0);
  });

  it('rejects malformed, foreign and oversized lists, naming the source', () => {
    const good = JSON.parse(encodeChunkDigests(computeChunkDigests(blob, blobDigest)).toString());
    const edit = (change: (o: typeof good) => void) => {
      const o = structuredClone(good);
      change(o);
      return JSON.stringify(o);
    };
    expect(reject('{"mediaType"').message).toMatch(/not JSON/);
    expect(reject('[]').message).toMatch(/not a JSON object/);
    expect(reject(edit((o) => (o.mediaType = 'application/vnd.dadi.chunk-digests.v2+json'))).message).toMatch(
      /media type/,
    );
    expect(reject(edit((o) => (o.algorithm = 'sha512'))).message).toMatch(/algorithm/);
    expect(reject(edit((o) => (o.chunkSize = 1000))).message).toMatch(/chunk size 1000/);
    expect(reject(edit((o) => (o.chunkSize = 2 ** 40))).message).toMatch(/chunk size/);
    expect(reject(edit((o) => (o.blob.digest = 'sha256:abc'))).message).toMatch(/blob.digest/);
    expect(reject(edit((o) => (o.blob.size = -1))).message).toMatch(/blob.size/);
    expect(reject(edit((o) => o.chunks.pop())).message).toMatch(/has 3 chunks, the list has 2/);
    expect(reject(edit((o) => (o.chunks[1] = o.chunks[1].toUpperCase()))).message).toMatch(/chunk 1 is not/);
    expect(reject(JSON.stringify(good), { digest: sha256Of('other'), size: blob.length }).message).toMatch(
      /describes sha256:/,
    );
    const big = reject(Buffer.alloc(MAX_CHUNK_DIGESTS_BYTES + 1, 0x20));
    expect(big.code).toBe('ERANGE');
  });
});
