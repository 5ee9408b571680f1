// ZFileWriter: a Sink that compresses everything written into it as a ZFile (spec §3.4), byte for
// byte like the reference builder, into another Sink. Not a reader; see reader.ts.
//
// Output: header (flags 0x13, digest) | blocks, each + CRC32C-raw(seed 100007) | u32 jump table |
// trailer (flags 0x16) and, with `overwriteHeader` on a seekable sink, the final struct rewritten
// at offset 0 with flags 0x1B.
//
// Known reference limitation (§3.5, §13.6): the C++ reader fetches at most 64 KiB per window, so it
// cannot read a stored block larger than 65536 bytes. That only happens with 64 KiB blocks of
// incompressible data, and no LZ4 block or zstd frame of 65536 random bytes fits in 65536 bytes
// (LZ4 needs ≥ 258 bytes of literal-length overhead, zstd ≥ 9 of frame/block headers), so it cannot
// be avoided while staying compatible. We write what the reference writes and count such blocks in
// `stats.oversizedBlocks` so callers can warn or pick a smaller block size; our reader reads them.

import type { Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { crc32cRaw } from '../../util/crc32c.js';
import { type BlockCodec, codecFor, type ZFileAlgorithm } from './codec.js';
import {
  encodeZFileHeader,
  ZFILE_BLOCK_CRC_SEED,
  ZFILE_FLAGS_HEADER,
  ZFILE_FLAGS_OVERWRITTEN_HEADER,
  ZFILE_FLAGS_TRAILER,
  ZFILE_HT_SPACE,
  ZFILE_HT_STRUCT_SIZE,
  type ZFileHeader,
} from './header.js';

export interface ZFileWriterOptions {
  /** Default 'lz4'. */
  algorithm?: ZFileAlgorithm;
  /** Uncompressed bytes per block: a power of two from 4096 to 65536. Default 4096. */
  blockSize?: number;
  /**
   * Rewrite the header at offset 0 with the final index fields (flags 0x1B), as `overlaybd-commit -z`
   * does. Needs a sink with `pwrite`; on a sink without it (uploads) the header is left as first
   * written, as the reference does on its upload paths. Default false.
   */
  overwriteHeader?: boolean;
  /** Append a CRC to every block (the verify byte). Default true, as every overlaybd tool. */
  verify?: boolean;
}

export interface ZFileWriterStats {
  blocks: number;
  /** Bytes written to the inner sink so far. */
  storedBytes: number;
  /** Stored blocks (compressed + CRC) over 64 KiB, which the C++ reader cannot read (see above). */
  oversizedBlocks: number;
  /** Whether the final header was written at offset 0 (after end()). */
  headerOverwritten: boolean;
}

/** Output is staged and handed to the inner sink in pieces of about this size. */
const OUT_CHUNK = 1 << 20;
/** The reference's 64 KiB read window. */
const REFERENCE_WINDOW = 65536;

export class ZFileWriter implements Sink {
  readonly name: string;
  readonly blockSize: number;
  readonly algorithm: ZFileAlgorithm;
  private readonly codec: BlockCodec;
  private readonly verify: boolean;
  private readonly overwriteHeader: boolean;
  private readonly maxStored: number;
  private readonly ht: Omit<ZFileHeader, 'magicOk'>;
  private rawBytes = 0;
  private started = false;
  private ended = false;
  /** A partial block waiting for more input. */
  private readonly reserve: Buffer;
  private reserved = 0;
  /** Staged output. */
  private readonly out: Buffer;
  private outLen = 0;
  private stored = 0;
  private lengths = new Uint32Array(1024);
  private blocks = 0;
  private oversized = 0;
  private overwritten = false;

  constructor(
    private readonly inner: Sink,
    opts: ZFileWriterOptions = {},
  ) {
    const bs = opts.blockSize ?? 4096;
    if (!Number.isInteger(bs) || bs < 4096 || bs > 65536 || (bs & (bs - 1)) !== 0) {
      throw new DadiError('EINVAL', `${inner.name}: ZFile block size ${bs} is not a power of two in 4 KiB..64 KiB`);
    }
    this.name = `zfile into ${inner.name}`;
    this.blockSize = bs;
    this.codec = codecFor(opts.algorithm ?? 'lz4', inner.name);
    this.algorithm = this.codec.algorithm;
    this.verify = opts.verify ?? true;
    this.overwriteHeader = opts.overwriteHeader ?? false;
    this.maxStored = this.codec.bound(bs) + 4;
    this.reserve = Buffer.allocUnsafe(bs);
    this.out = Buffer.allocUnsafe(OUT_CHUNK + this.maxStored);
    this.ht = {
      size: ZFILE_HT_STRUCT_SIZE,
      digest: 0,
      flags: ZFILE_FLAGS_HEADER,
      indexOffset: 0,
      indexSize: 0,
      originalFileSize: 0,
      indexCrc: 0,
      blockSize: bs,
      algo: this.codec.code,
      level: 0,
      useDict: 0,
      dictSize: 0,
      verify: this.verify ? 1 : 0,
    };
  }

  /** Uncompressed bytes written so far. */
  get position(): number {
    return this.rawBytes;
  }

  get stats(): ZFileWriterStats {
    return {
      blocks: this.blocks,
      storedBytes: this.stored + this.outLen,
      oversizedBlocks: this.oversized,
      headerOverwritten: this.overwritten,
    };
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.ended) throw new DadiError('EINVAL', `${this.name}: write after end`);
    this.start();
    this.rawBytes += chunk.length;
    const bs = this.blockSize;
    let p = 0;
    if (this.reserved > 0) {
      p = Math.min(bs - this.reserved, chunk.length);
      this.reserve.set(chunk.subarray(0, p), this.reserved);
      this.reserved += p;
      if (this.reserved < bs) return;
      if (this.outLen + this.maxStored > this.out.length) await this.flushOut();
      this.block(this.reserve);
      this.reserved = 0;
    }
    for (; chunk.length - p >= bs; p += bs) {
      if (this.outLen + this.maxStored > this.out.length) await this.flushOut();
      this.block(chunk.subarray(p, p + bs));
    }
    if (p < chunk.length) {
      this.reserve.set(chunk.subarray(p));
      this.reserved = chunk.length - p;
    }
  }

  /** Compress the last partial block, write the jump table and trailer, then end the inner sink. */
  async end(): Promise<void> {
    if (this.ended) return;
    this.start();
    this.ended = true;
    if (this.reserved > 0) {
      if (this.outLen + this.maxStored > this.out.length) await this.flushOut();
      this.block(this.reserve.subarray(0, this.reserved));
    }
    this.reserved = 0;

    const n = this.blocks;
    const index = Buffer.allocUnsafe(4 * n);
    for (let k = 0; k < n; k++) index.writeUInt32LE(this.lengths[k]!, 4 * k);
    const ht = this.ht;
    ht.indexOffset = this.stored + this.outLen;
    ht.indexSize = n;
    ht.originalFileSize = this.rawBytes;
    ht.indexCrc = crc32cRaw(index);
    await this.flushOut();
    if (n > 0) await this.inner.write(index);
    this.stored += index.length;

    ht.flags = ZFILE_FLAGS_TRAILER;
    await this.inner.write(encodeZFileHeader(ht));
    this.stored += ZFILE_HT_SPACE;
    if (this.overwriteHeader && this.inner.pwrite) {
      ht.flags = ZFILE_FLAGS_OVERWRITTEN_HEADER;
      await this.inner.pwrite(encodeZFileHeader(ht), 0);
      this.overwritten = true;
    }
    await this.inner.end();
  }

  /** Stage the header on first use (a constructor cannot write). */
  private start(): void {
    if (this.started) return;
    this.started = true;
    this.out.set(encodeZFileHeader(this.ht), 0);
    this.outLen = ZFILE_HT_SPACE;
  }

  /**
   * Compress one block (full, or the final partial one) into the staging buffer. Callers first
   * flush the buffer when it has less than `maxStored` bytes of room.
   */
  private block(src: Uint8Array): void {
    const at = this.outLen;
    let len = this.codec.compress(src, this.out.subarray(at, at + this.maxStored - 4));
    if (this.verify) {
      this.out.writeUInt32LE(crc32cRaw(this.out.subarray(at, at + len), ZFILE_BLOCK_CRC_SEED), at + len);
      len += 4;
    }
    this.outLen += len;
    if (len > REFERENCE_WINDOW) this.oversized++;
    if (this.blocks === this.lengths.length) {
      const grown = new Uint32Array(this.lengths.length * 2);
      grown.set(this.lengths);
      this.lengths = grown;
    }
    this.lengths[this.blocks++] = len;
  }

  private async flushOut(): Promise<void> {
    if (this.outLen === 0) return;
    const n = this.outLen;
    await this.inner.write(this.out.subarray(0, n));
    this.stored += n;
    this.outLen = 0;
  }
}
