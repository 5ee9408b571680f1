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
//
// Threads: once a stream has passed PARALLEL_AFTER bytes, input is cut into 1 MiB batches that the
// process-wide compress pool (compress-pool.ts) compresses on worker threads, a few batches in
// flight, their output written in order. The bytes are the same as inline (same codec calls, see
// blocks.ts); `threads: 0` keeps everything on the calling thread.

import type { BlockSink, Sink } from '../../blockfile/sink.js';
import { DadiError, type DadiErrorCode } from '../../errors.js';
import { crc32cRaw } from '../../util/crc32c.js';
import { batchBound, compressBatch, compressBlock } from './blocks.js';
import { type BlockCodec, codecFor, type ZFileAlgorithm } from './codec.js';
import { type CompressPool, type CompressResult, compressPool, defaultThreads } from './compress-pool.js';
import {
  encodeZFileHeader,
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
  /**
   * Worker threads to compress with once the stream is large (past PARALLEL_AFTER bytes); 0 keeps
   * all work on the calling thread. Default: $DADI_ZFILE_THREADS, else defaultThreads().
   */
  threads?: number;
  /** Input bytes compressed inline before switching to threads. Default 32 MiB (tests use 0). */
  parallelAfter?: number;
}

// In compress-pool.ts (which loads no codec), so a command can start the workers before it loads the rest.
export { defaultThreads, warmCompressThreads } from './compress-pool.js';

/** Names a ZFile block framing (see BlockSink.blockFormat): blocks stored alike are byte-identical. */
export function blockFormat(algorithm: ZFileAlgorithm, blockSize: number, verify: boolean): string {
  return `zfile/${algorithm}/${blockSize}/${verify ? 'crc' : 'nocrc'}`;
}

export interface ZFileWriterStats {
  blocks: number;
  /** Bytes written to the inner sink so far. */
  storedBytes: number;
  /** Stored blocks (compressed + CRC) over 64 KiB, which the C++ reader cannot read (see above). */
  oversizedBlocks: number;
  /** Whether the final header was written at offset 0 (after end()). */
  headerOverwritten: boolean;
  /** Batches of blocks compressed on worker threads (0 when everything ran inline). */
  workerBatches: number;
  /** Blocks taken already stored (writeStored), not compressed here. */
  storedBlocks: number;
}

/** Output is staged and handed to the inner sink in pieces of about this size. */
const OUT_CHUNK = 1 << 20;
/** The reference's 64 KiB read window. */
const REFERENCE_WINDOW = 65536;
/** Input bytes per worker job (a multiple of every block size). */
const JOB_BYTES = 1 << 20;
/**
 * Streams go to worker threads once this much input has been compressed inline: below it, starting
 * workers (~0.1–0.2 s of CPU each) costs more than it saves (see compress-pool.ts).
 */
const PARALLEL_AFTER = 32 << 20;
/** Jobs in flight per worker thread. */
const JOBS_PER_THREAD = 2;

interface Job {
  result: Promise<CompressResult>;
  settled: boolean;
}

export class ZFileWriter implements BlockSink {
  readonly name: string;
  readonly blockFormat: string;
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
  private readonly threads: number;
  private readonly parallelAfter: number;
  /** Set once the stream has switched to worker threads. */
  private pool: CompressPool | undefined;
  /** The batch being filled (parallel mode). */
  private batch: ArrayBuffer | undefined;
  private batchFill = 0;
  /** Batches being compressed, in output order. */
  private readonly jobs: Job[] = [];
  private readonly freeInputs: ArrayBuffer[] = [];
  private readonly freeOutputs: ArrayBuffer[] = [];
  private failed: Error | undefined;
  private workerBatches = 0;
  private storedBlocks = 0;

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
    this.blockFormat = blockFormat(this.algorithm, bs, this.verify);
    this.overwriteHeader = opts.overwriteHeader ?? false;
    const threads = opts.threads ?? defaultThreads();
    if (!Number.isInteger(threads) || threads < 0) {
      throw new DadiError('EINVAL', `${inner.name}: ZFile threads ${threads} is not a whole number ≥ 0`);
    }
    this.threads = threads;
    this.parallelAfter = opts.parallelAfter ?? PARALLEL_AFTER;
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
      workerBatches: this.workerBatches,
      storedBlocks: this.storedBlocks,
    };
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.ended) throw new DadiError('EINVAL', `${this.name}: write after end`);
    if (this.failed) throw this.failed;
    this.start();
    if (!this.pool && this.threads > 0 && this.rawBytes >= this.parallelAfter) await this.goParallel();
    this.rawBytes += chunk.length;
    if (this.pool) return this.writeParallel(chunk);
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

  /**
   * Append whole blocks already stored in this writer's format (compressed ahead, see
   * compress-ahead.ts): the same bytes as writing their input, without compressing it again.
   */
  async writeStored(blocks: readonly Uint8Array[]): Promise<void> {
    if (this.ended) throw new DadiError('EINVAL', `${this.name}: write after end`);
    if (this.failed) throw this.failed;
    this.start();
    if (this.reserved > 0 || this.batchFill % this.blockSize !== 0) {
      throw new DadiError('EINVAL', `${this.name}: stored blocks must start at a block boundary`);
    }
    // Batches of raw input before these go out first, in order.
    if (this.pool) {
      if (this.batchFill > 0) await this.submit();
      while (this.jobs.length > 0) await this.retire();
    }
    for (const b of blocks) {
      if (b.length > this.maxStored) throw new DadiError('EINVAL', `${this.name}: a stored block of ${b.length} bytes`);
      if (this.outLen + b.length > this.out.length) await this.flushOut();
      this.out.set(b, this.outLen);
      this.outLen += b.length;
      this.record(b.length);
    }
    this.rawBytes += blocks.length * this.blockSize;
    this.storedBlocks += blocks.length;
  }

  /** Compress the last partial block, write the jump table and trailer, then end the inner sink. */
  async end(): Promise<void> {
    if (this.ended) {
      if (this.failed) throw this.failed;
      return;
    }
    if (this.failed) throw this.failed;
    this.start();
    this.ended = true;
    if (this.pool) {
      if (this.batchFill > 0) await this.submit();
      while (this.jobs.length > 0) await this.retire();
    } else if (this.reserved > 0) {
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
    const len = compressBlock(this.codec, src, this.out.subarray(at, at + this.maxStored), this.verify);
    this.outLen += len;
    this.record(len);
  }

  /** Note a stored block length for the jump table. */
  private record(len: number): void {
    if (len > REFERENCE_WINDOW) this.oversized++;
    if (this.blocks === this.lengths.length) {
      const grown = new Uint32Array(this.lengths.length * 2);
      grown.set(this.lengths);
      this.lengths = grown;
    }
    this.lengths[this.blocks++] = len;
  }

  /** Switch to worker threads: flush what was compressed inline, start the partial block's batch. */
  private async goParallel(): Promise<void> {
    try {
      this.pool = compressPool(this.threads);
    } catch (e) {
      throw this.fail(e);
    }
    await this.flushOut();
    this.batch = new ArrayBuffer(JOB_BYTES);
    new Uint8Array(this.batch).set(this.reserve.subarray(0, this.reserved));
    this.batchFill = this.reserved;
    this.reserved = 0;
  }

  private async writeParallel(chunk: Uint8Array): Promise<void> {
    for (let p = 0; p < chunk.length; ) {
      this.batch ??= this.freeInputs.pop() ?? new ArrayBuffer(JOB_BYTES);
      const n = Math.min(JOB_BYTES - this.batchFill, chunk.length - p);
      new Uint8Array(this.batch, this.batchFill, n).set(chunk.subarray(p, p + n));
      this.batchFill += n;
      p += n;
      if (this.batchFill === JOB_BYTES) await this.submit();
    }
  }

  /**
   * Hand the filled batch to a worker (or compress it here while no worker has started yet), then
   * write out finished batches in order, waiting while too many are in flight.
   */
  private async submit(): Promise<void> {
    const input = this.batch!;
    const length = this.batchFill;
    this.batch = undefined;
    this.batchFill = 0;
    const pool = this.pool!;
    let job: Job;
    try {
      if (pool.ready) {
        const result = pool.run({
          algorithm: this.algorithm,
          blockSize: this.blockSize,
          verify: this.verify,
          input,
          length,
          output: this.freeOutputs.pop(),
        });
        this.workerBatches++;
        const j: Job = { result, settled: false };
        const settle = () => {
          j.settled = true;
        };
        result.then(settle, settle); // also keeps a failure from being 'unhandled' before retire()
        job = j;
      } else {
        pool.check();
        job = { result: Promise.resolve(this.compressHere(input, length)), settled: true };
      }
    } catch (e) {
      throw this.fail(e);
    }
    this.jobs.push(job);
    const max = this.threads * JOBS_PER_THREAD;
    while (this.jobs.length > 0 && (this.jobs.length > max || this.jobs[0]!.settled)) await this.retire();
  }

  private compressHere(input: ArrayBuffer, length: number): CompressResult {
    const need = batchBound(this.codec, this.blockSize, length);
    let output = this.freeOutputs.pop();
    if (!output || output.byteLength < need) output = new ArrayBuffer(need);
    const r = compressBatch(
      this.codec,
      this.blockSize,
      this.verify,
      new Uint8Array(input, 0, length),
      new Uint8Array(output),
    );
    return { input, output, length: r.length, lengths: r.lengths };
  }

  /** Write out the oldest batch once it is compressed. */
  private async retire(): Promise<void> {
    let r: CompressResult;
    try {
      r = await this.jobs[0]!.result;
    } catch (e) {
      throw this.fail(e);
    }
    this.jobs.shift();
    for (const len of r.lengths) this.record(len);
    // Restage into `out`, so the inner sink gets the same 1 MiB writes as inline (a batch's output
    // is often half that, and small writes cost the file sink a copy each).
    try {
      for (let p = 0; p < r.length; ) {
        const n = Math.min(r.length - p, OUT_CHUNK - this.outLen);
        this.out.set(new Uint8Array(r.output, p, n), this.outLen);
        this.outLen += n;
        p += n;
        if (this.outLen >= OUT_CHUNK) await this.flushOut();
      }
    } catch (e) {
      // The inner sink names itself; stop here without rewrapping.
      this.jobs.length = 0;
      this.failed = e as Error;
      throw e;
    }
    this.freeInputs.push(r.input);
    this.freeOutputs.push(r.output);
  }

  /** Fail the writer for good: drop the jobs in flight, name this sink in the error. */
  private fail(e: unknown): Error {
    if (this.failed) return this.failed;
    this.jobs.length = 0;
    const err = e as { code?: DadiErrorCode; message?: string };
    this.failed = new DadiError(err?.code ?? 'EIO', `${this.name}: compression failed: ${err?.message ?? String(e)}`, {
      cause: e,
    });
    return this.failed;
  }

  private async flushOut(): Promise<void> {
    if (this.outLen === 0) return;
    const n = this.outLen;
    await this.inner.write(this.out.subarray(0, n));
    this.stored += n;
    this.outLen = 0;
  }
}
