// Open any layer blob — [tar wrapper] → [ZFile] → LSMT, or fewer wrappings — as one sealed LSMT
// layer (a BlockFile of the virtual disk). The one place the format stages are composed for a layer.
// Not for finding blobs (layer-blob.ts) or stacking layers (layer-stack.ts).

import type { BlockFile } from '../blockfile/blockfile.js';
import { formatError } from '../errors.js';
import { SealedLayer } from '../format/lsmt/index.js';
import { detectTar, tarPayloadFile } from '../format/tar/index.js';
import { ZFileReader } from '../format/zfile/index.js';
import { fetchWhy } from '../util/fetch-log.js';

export type Wrapping = 'tar' | 'zfile' | 'lsmt';

/** The stages a blob was unwrapped through, outermost first, each as a BlockFile. */
export interface UnwrappedBlob {
  /** e.g. ['tar', 'zfile', 'lsmt']. */
  wrapping: Wrapping[];
  /** The raw blob. */
  raw: BlockFile;
  /** The tar payload view, when tar-wrapped. */
  tar?: BlockFile;
  /** The decompressed view, when ZFile-compressed. */
  zfile?: ZFileReader;
  /** The innermost byte stream (what LSMT parses). */
  inner: BlockFile;
}

export interface UnwrapOptions {
  /**
   * Drop [offset, offset+length) of the raw blob from the cache below, so that a ZFile block that
   * failed its CRC is fetched again (the reference's evict-and-retry, 3 tries).
   */
  evict?: (offset: number, length: number) => Promise<void>;
}

/** Strip the tar wrapper and ZFile compression, whichever are present. */
export async function unwrapBlob(raw: BlockFile, opts: UnwrapOptions = {}): Promise<UnwrappedBlob> {
  const wrapping: Wrapping[] = [];
  const out: UnwrappedBlob = { wrapping, raw, inner: raw };
  let payloadOffset = 0;
  const tar = await fetchWhy('tar-header', () => detectTar(raw));
  if (tar) {
    out.tar = tarPayloadFile(raw, tar);
    out.inner = out.tar;
    payloadOffset = tar.payloadOffset;
    wrapping.push('tar');
  }
  const evict = opts.evict;
  // One read of the ZFile header decides and opens (isZFile + open read it twice).
  const zfile = await fetchWhy('zfile-index', () =>
    ZFileReader.openIfZFile(out.inner, {
      onCorrupt: evict
        ? async ({ offset, length }) => {
            await evict(payloadOffset + offset, length);
            return true;
          }
        : undefined,
    }),
  );
  if (zfile) {
    out.zfile = zfile;
    out.inner = zfile;
    wrapping.push('zfile');
  }
  return out;
}

export interface OpenLayerOptions extends UnwrapOptions {
  /** A stage between the unwrapped LSMT file and the LSMT reader (a trace recorder). */
  wrapInner?: (inner: BlockFile) => BlockFile;
}

/** Open a layer blob of any wrapping as a sealed LSMT layer. */
export async function openLayer(raw: BlockFile, opts: OpenLayerOptions = {}): Promise<SealedLayer> {
  const { inner, wrapping } = await unwrapBlob(raw, opts);
  try {
    const layer = await fetchWhy('lsmt-index', () => SealedLayer.open(opts.wrapInner ? opts.wrapInner(inner) : inner));
    wrapping.push('lsmt');
    return layer;
  } catch (e) {
    if (wrapping.length === 0 && raw.size < 4096 * 2) {
      throw formatError(raw.name, 'not a layer blob: too small for an LSMT layer and neither tar nor ZFile');
    }
    throw e;
  }
}
