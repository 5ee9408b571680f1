// The chunk digest list: the sha256 of every fixed-size chunk of one layer blob, as stored in the
// registry (chunk i = blob bytes [i·chunkSize, (i+1)·chunkSize), the last one shorter). `dadi
// convert` publishes one per DADI layer blob; peers' chunks are checked against it (chunk-verify.ts).
// Encoding and decoding only (pure); fetching it is image/chunk-integrity.ts.
//
// Format v1 — a JSON document, written compactly in exactly this key order (so a blob's list always
// has the same bytes and digest):
//
//   {"mediaType":"application/vnd.dadi.chunk-digests.v1+json",
//    "algorithm":"sha256",
//    "chunkSize":1048576,
//    "blob":{"digest":"sha256:<64 hex>","size":<bytes>},
//    "chunks":["<64 hex>", …]}        // ceil(size / chunkSize) entries, chunk 0 first
//
// A reader accepts any key order and whitespace, but checks every field: the media type (a future
// incompatible version gets another one), a power-of-two chunk size in 4 KiB..64 MiB, the number of
// chunks, and each entry's form. The layer descriptor points at it by two annotations
// (CHUNK_DIGESTS_ANNOTATION), and it is a plain blob in the same repository or layout.

import { createHash } from 'node:crypto';
import { DadiError } from '../errors.js';
import { type Digest, isDigest } from '../oci/digest.js';
import { CHUNK_SIZE, chunkCount } from './chunks.js';

export const CHUNK_DIGESTS_MEDIA_TYPE = 'application/vnd.dadi.chunk-digests.v1+json';
/** Largest list a reader accepts (≈ 15 000 GiB of blob at 1 MiB chunks); checked before fetching. */
export const MAX_CHUNK_DIGESTS_BYTES = 16 << 20;

/** Layer descriptor annotations pointing at the list (dadi's own keys; other tools ignore them). */
export const ChunkDigestsAnnotation = {
  /** Digest of the chunk digest list blob. */
  digest: 'io.dadi.chunk-digests',
  /** Its size in bytes (decimal), so a reader bounds it before fetching. */
  size: 'io.dadi.chunk-digests.size',
} as const;

/** The annotations that point a layer descriptor at its chunk digest list blob `list`. */
export function chunkDigestsAnnotations(list: { digest: Digest; size: number }): Record<string, string> {
  return { [ChunkDigestsAnnotation.digest]: list.digest, [ChunkDigestsAnnotation.size]: String(list.size) };
}

const MIN_CHUNK = 4096;
const MAX_CHUNK = 64 << 20;
const HEX64 = /^[0-9a-f]{64}$/;

/** A decoded list. `digests` holds 32 bytes per chunk, chunk i at [32i, 32i+32). */
export interface ChunkDigests {
  blob: { digest: Digest; size: number };
  chunkSize: number;
  digests: Uint8Array;
}

/**
 * The list of `bytes` (a whole blob held in memory; large blobs use ChunkHasher).
 * @example encodeChunkDigests(computeChunkDigests(blob, sha256Of(blob)))
 */
export function computeChunkDigests(bytes: Uint8Array, digest: Digest, chunkSize = CHUNK_SIZE): ChunkDigests {
  const h = new ChunkHasher(chunkSize);
  h.update(bytes);
  return h.finish(digest);
}

/** Hashes a blob streamed through it in pieces of any size into its chunk digest list. */
export class ChunkHasher {
  private readonly done: Buffer[] = [];
  private hash = createHash('sha256');
  private inChunk = 0;
  private total = 0;

  constructor(readonly chunkSize = CHUNK_SIZE) {
    checkChunkSize(chunkSize, 'chunk hasher');
  }

  update(piece: Uint8Array): void {
    let p = 0;
    while (p < piece.length) {
      const n = Math.min(piece.length - p, this.chunkSize - this.inChunk);
      this.hash.update(piece.subarray(p, p + n));
      this.inChunk += n;
      this.total += n;
      p += n;
      if (this.inChunk === this.chunkSize) this.cut();
    }
  }

  /** The list, for the blob whose digest is `digest` (the caller hashed the whole blob). */
  finish(digest: Digest): ChunkDigests {
    if (this.inChunk > 0) this.cut();
    return { blob: { digest, size: this.total }, chunkSize: this.chunkSize, digests: Buffer.concat(this.done) };
  }

  private cut(): void {
    this.done.push(this.hash.digest());
    this.hash = createHash('sha256');
    this.inChunk = 0;
  }
}

/** The v1 bytes of a list (deterministic: fixed key order, no whitespace). */
export function encodeChunkDigests(list: ChunkDigests): Buffer {
  const chunks: string[] = [];
  for (let i = 0; i < list.digests.length; i += 32) {
    chunks.push(Buffer.from(list.digests.subarray(i, i + 32)).toString('hex'));
  }
  return Buffer.from(
    JSON.stringify({
      mediaType: CHUNK_DIGESTS_MEDIA_TYPE,
      algorithm: 'sha256',
      chunkSize: list.chunkSize,
      blob: { digest: list.blob.digest, size: list.blob.size },
      chunks,
    }),
    'utf8',
  );
}

/**
 * Decode and check a list. `name` (the blob or ref it came from) starts every error message; with
 * `forBlob`, the list must be about that blob. Throws DadiError EFORMAT (or ERANGE when too big).
 */
export function decodeChunkDigests(
  bytes: Uint8Array,
  name: string,
  forBlob?: { digest: Digest; size: number },
): ChunkDigests {
  const bad = (what: string) => new DadiError('EFORMAT', `${name}: chunk digest list: ${what}`);
  if (bytes.length > MAX_CHUNK_DIGESTS_BYTES) {
    throw new DadiError(
      'ERANGE',
      `${name}: chunk digest list of ${bytes.length} bytes is larger than the ${MAX_CHUNK_DIGESTS_BYTES} allowed`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('not a JSON object');
  const o = doc as Record<string, unknown>;
  if (o.mediaType !== CHUNK_DIGESTS_MEDIA_TYPE) {
    throw bad(`media type ${JSON.stringify(o.mediaType)} is not ${CHUNK_DIGESTS_MEDIA_TYPE}`);
  }
  if (o.algorithm !== 'sha256') throw bad(`algorithm ${JSON.stringify(o.algorithm)} is not sha256`);
  const chunkSize = o.chunkSize;
  if (typeof chunkSize !== 'number' || !validChunkSize(chunkSize)) {
    throw bad(`chunk size ${JSON.stringify(chunkSize)} is not a power of two in 4 KiB..64 MiB`);
  }
  const blob = o.blob as Record<string, unknown> | null | undefined;
  const digest = blob?.digest;
  const size = blob?.size;
  if (typeof digest !== 'string' || !isDigest(digest)) throw bad('blob.digest is not a sha256 digest');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw bad('blob.size is not a byte count');
  if (forBlob && (forBlob.digest !== digest || forBlob.size !== size)) {
    throw bad(`it describes ${digest} (${size} bytes), not ${forBlob.digest} (${forBlob.size} bytes)`);
  }
  const chunks = o.chunks;
  const n = chunkCount(size, chunkSize);
  if (!Array.isArray(chunks) || chunks.length !== n) {
    throw bad(
      `a blob of ${size} bytes has ${n} chunks, the list has ${Array.isArray(chunks) ? chunks.length : 'none'}`,
    );
  }
  const digests = Buffer.alloc(32 * n);
  for (let i = 0; i < n; i++) {
    const c = chunks[i];
    if (typeof c !== 'string' || !HEX64.test(c)) throw bad(`chunk ${i} is not 64 lowercase hex digits`);
    digests.write(c, 32 * i, 'hex');
  }
  return { blob: { digest, size }, chunkSize, digests };
}

function validChunkSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= MIN_CHUNK && n <= MAX_CHUNK && (n & (n - 1)) === 0;
}

function checkChunkSize(n: number, what: string): void {
  if (!validChunkSize(n))
    throw new DadiError('EINVAL', `${what}: chunk size ${n} is not a power of two in 4 KiB..64 MiB`);
}
