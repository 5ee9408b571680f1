// ZFile (overlaybd's seekable compressed file format, spec §3): reader, writer, detection.
export { type BlockCodec, codecFor, type ZFileAlgorithm } from './codec.js';
export { CompressAheadFile, type CompressAheadOptions } from './compress-ahead.js';
export {
  decodeZFileHeader,
  encodeZFileHeader,
  hasFlag,
  ZFILE_BLOCK_CRC_SEED,
  ZFILE_HT_SPACE,
  ZFileAlgo,
  ZFileFlag,
  type ZFileHeader,
  zfileDigest,
} from './header.js';
export { isZFile, type ZFileCorruptInfo, type ZFileOpenOptions, ZFileReader } from './reader.js';
export { verifyZFile, type ZFileVerifyReport } from './verify.js';
export { compressFile, decompressFile } from './whole-file.js';
export { warmCompressThreads, ZFileWriter, type ZFileWriterOptions, type ZFileWriterStats } from './writer.js';
