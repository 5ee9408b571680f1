// `zfile verify`: check a whole ZFile's structure, not just what a reader needs. A reader in
// header-overwrite mode never looks at the trailer, so a file missing its end still opens; verify
// requires every part: header, blocks, jump table and trailer, exactly filling the file.
// Not a repair tool, and not used on the read path (readers stay lazy).

import type { BlockFile } from '../../blockfile/blockfile.js';
import { readInto } from '../../blockfile/range.js';
import { DadiError } from '../../errors.js';
import { hasFlag, ZFILE_HT_SPACE, ZFileFlag, type ZFileHeader } from './header.js';
import { checkDigest, readStruct, ZFileReader } from './reader.js';

export interface ZFileVerifyReport {
  blocks: number;
  /** Uncompressed size. */
  size: number;
  /** Stored size (= the file's size). */
  storedSize: number;
  algorithm: string;
  headerOverwrite: boolean;
}

/** Index fields the header (in header-overwrite mode) and the trailer must agree on. */
const AGREED: Array<keyof ZFileHeader> = [
  'indexOffset',
  'indexSize',
  'originalFileSize',
  'indexCrc',
  'blockSize',
  'algo',
  'dictSize',
  'verify',
];

/**
 * Check `file` as a complete ZFile: the trailer is present, well-formed and agrees with the header;
 * the blocks are followed directly by the jump table and it by the trailer, which ends the file;
 * every block's CRC matches. Throws DadiError EFORMAT / ECORRUPT naming the file and the part.
 * `file` is left open.
 *
 * @example const r = await verifyZFile(await LocalFile.open('layer.zfile'));
 */
export async function verifyZFile(file: BlockFile): Promise<ZFileVerifyReport> {
  const name = file.name;
  const reader = await ZFileReader.open(file);
  const header = reader.header;
  const headerOverwrite = hasFlag(header.flags, ZFileFlag.HEADER_OVERWRITE);
  if (file.size < 2 * ZFILE_HT_SPACE) {
    throw new DadiError('EFORMAT', `${name}: ZFile of ${file.size} bytes cannot hold a header and a trailer`);
  }
  const t = await readStruct(file, file.size - ZFILE_HT_SPACE, 'trailer');
  const f = t.ht.flags;
  if (!t.ht.magicOk) {
    throw new DadiError('EFORMAT', `${name}: ZFile trailer missing (no magic in the last ${ZFILE_HT_SPACE} bytes)`);
  }
  if (hasFlag(f, ZFileFlag.HEADER) || !hasFlag(f, ZFileFlag.DATA) || !hasFlag(f, ZFileFlag.SEALED)) {
    throw new DadiError('EFORMAT', `${name}: ZFile trailer has wrong flags 0x${f.toString(16)}`);
  }
  checkDigest(name, 'trailer', t);
  const trailer = t.ht;
  if (headerOverwrite) {
    for (const k of AGREED) {
      if (header[k] !== trailer[k]) {
        throw new DadiError(
          'EFORMAT',
          `${name}: ZFile header and trailer disagree on ${k} (${String(header[k])} vs ${String(trailer[k])})`,
        );
      }
    }
  }
  const n = trailer.indexSize;
  const expected = trailer.indexOffset + 4 * n + ZFILE_HT_SPACE;
  if (file.size !== expected) {
    throw new DadiError(
      'EFORMAT',
      `${name}: ZFile is ${file.size} bytes; its index (${n} entries at ${trailer.indexOffset}) and trailer end at ${expected}`,
    );
  }
  const blocksEnd = reader.blockOffset(reader.blockCount);
  if (blocksEnd !== trailer.indexOffset) {
    throw new DadiError(
      'EFORMAT',
      `${name}: ZFile blocks end at ${blocksEnd}, but the index starts at ${trailer.indexOffset}`,
    );
  }
  if (reader.verify) await reader.verifyBlocks();
  else await decodeAll(reader);
  return {
    blocks: reader.blockCount,
    size: reader.size,
    storedSize: file.size,
    algorithm: reader.algorithm,
    headerOverwrite,
  };
}

/** Without block CRCs, the best check left is that every block decodes to its exact size. */
async function decodeAll(reader: ZFileReader): Promise<void> {
  const piece = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(1, reader.size)));
  for (let p = 0; p < reader.size; p += piece.length) {
    await readInto(reader, piece.subarray(0, Math.min(piece.length, reader.size - p)), p, 'ZFile verify');
  }
}
