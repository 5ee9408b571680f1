// Per-block codecs of ZFile (spec §3.3): raw LZ4 blocks and one zstd frame (level 3) per block,
// compressing into and decoding into caller buffers. Not the framing (CRC, jump table); see
// reader.ts / writer.ts. Decoding is always bounded by the destination length.

import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { DadiError } from '../../errors.js';
import { ZFileAlgo } from './header.js';

interface Lz4Binding {
  /** LZ4_decompress_safe(src, dst, src.length, dst.length): bytes produced, < 0 on malformed input. */
  decodeBlock(src: Uint8Array, dst: Uint8Array): number;
  /** LZ4_compress_default into dst (capacity dst.length): bytes written, 0 if it does not fit. */
  encodeBlock(src: Uint8Array, dst: Uint8Array): number;
  encodeBound(n: number): number;
}
const require = createRequire(import.meta.url);
/**
 * Loaded on first use: the lz4 package loads its stream classes with its binding (~15 ms a thread),
 * and dadi's own layers are zstd, so a conversion's main thread and compression workers need none.
 */
let lz4Binding: Lz4Binding | undefined;
const lz4 = (): Lz4Binding => (lz4Binding ??= require('lz4') as Lz4Binding);
// CommonJS native binding: its names are not visible to ESM named imports.
const zstd = require('zstd-napi/binding') as typeof ZstdBinding;

export type ZFileAlgorithm = 'lz4' | 'zstd';

/** Level the reference always uses for zstd (the header's `level` byte is ignored). */
export const ZSTD_LEVEL = 3;

export interface BlockCodec {
  readonly algorithm: ZFileAlgorithm;
  /** The header `algo` code. */
  readonly code: number;
  /** Worst-case compressed size of `n` input bytes. */
  bound(n: number): number;
  /** Compress all of `src` into `dst` (length ≥ bound(src.length)); returns the bytes written. */
  compress(src: Uint8Array, dst: Uint8Array): number;
  /**
   * Decode one block from `src` into `dst`, never writing past `dst.length`. Returns the bytes
   * produced, or -1 if `src` is not a valid block or does not fit.
   */
  decompress(src: Uint8Array, dst: Uint8Array): number;
}

const lz4Codec: BlockCodec = {
  algorithm: 'lz4',
  code: ZFileAlgo.LZ4,
  bound: (n) => lz4().encodeBound(n),
  compress(src, dst) {
    const n = lz4().encodeBlock(src, dst);
    if (n <= 0) throw new DadiError('EINVAL', `lz4: output buffer too small (${dst.length} for ${src.length})`);
    return n;
  },
  decompress(src, dst) {
    if (src.length === 0 || dst.length === 0) return -1;
    const n = lz4().decodeBlock(src, dst);
    return n > 0 ? n : -1;
  },
};

// zstd contexts are reused: every call is synchronous, so one pair per process is safe.
let cctx: ZstdBinding.CCtx | undefined;
let dctx: ZstdBinding.DCtx | undefined;

const zstdCodec: BlockCodec = {
  algorithm: 'zstd',
  code: ZFileAlgo.ZSTD,
  bound: (n) => zstd.compressBound(n),
  compress(src, dst) {
    cctx ??= new zstd.CCtx();
    return cctx.compress(dst, src, ZSTD_LEVEL);
  },
  decompress(src, dst) {
    if (src.length === 0 || dst.length === 0) return -1;
    dctx ??= new zstd.DCtx();
    try {
      const n = dctx.decompress(dst, src);
      return n > 0 ? n : -1;
    } catch {
      return -1;
    }
  },
};

/** The codec for an algorithm name or header `algo` code; EUNSUPPORTED for anything else. */
export function codecFor(algo: ZFileAlgorithm | number, where = 'zfile'): BlockCodec {
  if (algo === 'lz4' || algo === ZFileAlgo.LZ4) return lz4Codec;
  if (algo === 'zstd' || algo === ZFileAlgo.ZSTD) return zstdCodec;
  const what = algo === ZFileAlgo.MINI_LZO ? 'MINI_LZO (0)' : String(algo);
  throw new DadiError('EUNSUPPORTED', `${where}: unsupported compression algorithm ${what}`);
}
