// What peers' chunks of a layer blob are checked against (p2p/chunk-verify.ts), loaded from where
// the image lives: the chunk digest list the layer descriptor points at (p2p/chunk-digests.ts),
// and, for blobs without one, the CRC'd ZFile block layout inside the blob. Not the check itself.

import type { BlockFile } from '../blockfile/blockfile.js';
import { SliceFile } from '../blockfile/range.js';
import { DadiError } from '../errors.js';
import { detectTar } from '../format/tar/index.js';
import { isZFile, ZFileReader } from '../format/zfile/index.js';
import { parseDigest, sha256Of } from '../oci/digest.js';
import type { ImageSource } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';
import {
  CHUNK_DIGESTS_MEDIA_TYPE,
  type ChunkDigests,
  ChunkDigestsAnnotation,
  decodeChunkDigests,
  MAX_CHUNK_DIGESTS_BYTES,
} from '../p2p/chunk-digests.js';
import type { ZFileBlockMap } from '../p2p/chunk-verify.js';

/**
 * The descriptor of the chunk digest list `layer` points at, or undefined when it has none.
 * Throws EFORMAT (naming `name`, the image) for malformed annotations, ERANGE for a list larger
 * than MAX_CHUNK_DIGESTS_BYTES.
 */
export function chunkDigestsDescriptor(layer: Descriptor, name: string): Descriptor | undefined {
  const a = layer.annotations ?? {};
  const digest = a[ChunkDigestsAnnotation.digest];
  const sizeText = a[ChunkDigestsAnnotation.size];
  if (digest === undefined && sizeText === undefined) return undefined;
  const what = `${name}: layer ${layer.digest}`;
  if (digest === undefined || sizeText === undefined) {
    throw new DadiError(
      'EFORMAT',
      `${what}: annotations ${ChunkDigestsAnnotation.digest} and ${ChunkDigestsAnnotation.size} must come together`,
    );
  }
  const d = parseDigest(digest, `${what}: annotation ${ChunkDigestsAnnotation.digest}`);
  if (!/^\d{1,9}$/.test(sizeText)) {
    throw new DadiError('EFORMAT', `${what}: annotation ${ChunkDigestsAnnotation.size} is not a byte count`);
  }
  const size = Number(sizeText);
  if (size > MAX_CHUNK_DIGESTS_BYTES) {
    throw new DadiError(
      'ERANGE',
      `${what}: chunk digest list of ${size} bytes is larger than the ${MAX_CHUNK_DIGESTS_BYTES} allowed`,
    );
  }
  return { mediaType: CHUNK_DIGESTS_MEDIA_TYPE, digest: d, size };
}

/**
 * Fetch and check the chunk digest list of `layer` from `src` (the image's registry repository or
 * layout), or undefined when the layer has none. The blob's size and digest are verified and the
 * list must describe `layer`. Errors are DadiErrors naming the image and the layer: ENOTFOUND when
 * the list blob is gone (for instance collected by the registry's garbage collector, which does
 * not follow annotations), EFORMAT / ECORRUPT / ERANGE for a bad one.
 *
 * @example const list = await loadChunkDigests(src, manifest.layers[0]);
 */
export async function loadChunkDigests(
  src: ImageSource,
  layer: Descriptor,
  opts: { signal?: AbortSignal } = {},
): Promise<ChunkDigests | undefined> {
  const desc = chunkDigestsDescriptor(layer, src.name);
  if (!desc) return undefined;
  const what = `${src.name}: chunk digest list ${desc.digest} of layer ${layer.digest}`;
  const pieces: Uint8Array[] = [];
  try {
    // The stream checks the size as it goes (never more than the bounded descriptor size).
    for await (const c of src.blobStream(desc, opts)) pieces.push(c);
  } catch (e) {
    if (e instanceof DadiError) throw new DadiError(e.code, `${what}: ${e.message}`, { cause: e });
    throw e;
  }
  const bytes = Buffer.concat(pieces);
  const got = sha256Of(bytes);
  if (got !== desc.digest) throw new DadiError('ECORRUPT', `${what}: content hashes to ${got}`);
  return decodeChunkDigests(bytes, what, { digest: layer.digest, size: layer.size });
}

/**
 * Where the CRC'd ZFile blocks are in a layer blob `raw` (tar-wrapped or bare), or undefined when
 * the blob holds no ZFile or its blocks carry no CRCs. Reads the tar header, the ZFile header (and
 * trailer) and the jump table — read them from a trusted source (the registry or root), since a
 * peer could forge them.
 */
export async function zfileBlockMap(raw: BlockFile): Promise<ZFileBlockMap | undefined> {
  const tar = await detectTar(raw);
  const start = tar?.payloadOffset ?? 0;
  const inner = tar ? new SliceFile(raw, start, tar.payloadSize) : raw;
  if (!(await isZFile(inner))) return undefined;
  // Not closed: closing the reader would close `raw`, which stays the caller's.
  const z = await ZFileReader.open(inner);
  if (!z.verify) return undefined;
  const offsets = new Float64Array(z.blockCount + 1);
  for (let k = 0; k <= z.blockCount; k++) offsets[k] = z.blockOffset(k);
  return { start, offsets };
}
