// Describe a layer blob for `dadi layer inspect`: the wrapping found, the tar member, the ZFile
// header/trailer and the LSMT header/trailer with an index summary. Read-only; plain data out.

import { LocalFile } from '../blockfile/local.js';
import { SealedLayer } from '../format/lsmt/index.js';
import { detectTar } from '../format/tar/index.js';
import { hasFlag, ZFileFlag, type ZFileHeader, type ZFileReader } from '../format/zfile/index.js';
import { unwrapBlob } from './open-layer.js';

export interface LayerBlobDescription {
  file: string;
  fileSize: number;
  wrapping: string[];
  tar?: { member: string; payloadOffset: number; payloadSize: number };
  zfile?: Record<string, unknown>;
  lsmt: Record<string, unknown>;
}

export async function inspectLayerFile(path: string): Promise<LayerBlobDescription> {
  const raw = await LocalFile.open(path);
  try {
    const info: LayerBlobDescription = { file: path, fileSize: raw.size, wrapping: [], lsmt: {} };
    const tar = await detectTar(raw);
    if (tar) info.tar = { member: tar.memberName, payloadOffset: tar.payloadOffset, payloadSize: tar.payloadSize };
    const unwrapped = await unwrapBlob(raw);
    info.wrapping = [...unwrapped.wrapping];
    if (unwrapped.zfile) info.zfile = describeZFile(unwrapped.zfile);
    const layer = await SealedLayer.open(unwrapped.inner);
    info.wrapping.push('lsmt');
    info.lsmt = layer.describe();
    return info;
  } finally {
    await raw.close();
  }
}

function describeZFile(z: ZFileReader): Record<string, unknown> {
  const flagNames = (h: ZFileHeader) =>
    Object.entries(ZFileFlag)
      .filter(([, bit]) => hasFlag(h.flags, bit))
      .map(([name]) => name.toLowerCase())
      .join(',');
  const header = z.header;
  return {
    algorithm: z.algorithm,
    blockSize: z.blockSize,
    blocks: z.blockCount,
    verify: z.verify,
    originalSize: z.size,
    headerFlags: `0x${(header.flags & 0x3fn).toString(16)} (${flagNames(header)})`,
    trailerFlags: z.trailer
      ? `0x${(z.trailer.flags & 0x3fn).toString(16)} (${flagNames(z.trailer)})`
      : 'not read (header overwritten)',
    indexOffset: (z.trailer ?? header).indexOffset,
    indexCrc: `0x${(z.trailer ?? header).indexCrc.toString(16)}`,
  };
}
