// Sinks: append-only byte streams that writers (LSMT commit, ZFile writer, tar wrapper) produce
// into and stack on each other, as overlaybd's commit streams `write()` into builder files.
// Not for random access reads; see blockfile.ts.

import { type FileHandle, open } from 'node:fs/promises';
import { DadiError } from '../errors.js';
import { type AtomicOutput, outputError } from '../util/atomic-output.js';

export interface Sink {
  readonly name: string;
  /** Bytes appended so far. */
  readonly position: number;
  /** Append bytes. The sink may keep a reference to `chunk` only until the promise settles. */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Overwrite already-written bytes at `offset` (relative to this sink's start), if the sink
   * supports it (files do; uploads do not). Used to rewrite headers once sizes are known.
   */
  pwrite?(chunk: Uint8Array, offset: number): Promise<void>;
  /** Finish the stream (writes trailers, flushes). The sink cannot be used afterwards. */
  end(): Promise<void>;
}

/**
 * Blocks of a file compressed ahead of a commit (format/zfile/compress-ahead.ts), in the framing a
 * BlockSink of the same `format` stores them: what that sink would write for `blockSize` bytes of
 * the file at a block boundary, for the blocks that were made ahead.
 */
export interface CompressedBlocks {
  readonly format: string;
  readonly blockSize: number;
  /** Wait for blocks still being compressed. */
  settle(): Promise<void>;
  /** How many consecutive blocks from `offset`, `max` at most, were made ahead (0 off a boundary). */
  heldRun(offset: number, max: number): number;
  /** The stored bytes of `count` such blocks (views of a buffer the next call may reuse). */
  readStored(offset: number, count: number): Promise<Uint8Array[]>;
}

/** A sink that stores its input in blocks (the ZFile writer) and takes blocks already stored. */
export interface BlockSink extends Sink {
  /** Names the block framing: blocks stored elsewhere in the same format are byte-identical. */
  readonly blockFormat: string;
  readonly blockSize: number;
  /**
   * Append whole blocks given as their stored bytes (each stands for `blockSize` input bytes).
   * Only at a block boundary of the input (`position` a multiple of `blockSize`).
   */
  writeStored(blocks: readonly Uint8Array[]): Promise<void>;
}

export function hasCompressedBlocks<T extends object>(f: T): f is T & CompressedBlocks {
  return typeof (f as Partial<CompressedBlocks>).readStored === 'function';
}

export function isBlockSink(s: Sink): s is BlockSink {
  return typeof (s as Partial<BlockSink>).writeStored === 'function';
}

/** A sink writing a local file, buffering small appends into 1 MiB writes. */
export class FileSink implements Sink {
  private pos = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private static readonly FLUSH_AT = 1 << 20;

  private constructor(
    readonly name: string,
    private readonly fh: FileHandle,
    /** False when the handle belongs to an AtomicOutput, which syncs, closes and renames it. */
    private readonly ownsHandle = true,
  ) {}

  /** A sink writing into an atomic output's temporary file; `end()` flushes, the output commits. */
  static into(out: AtomicOutput): FileSink {
    return new FileSink(out.dest, out.handle, false);
  }

  /** Create (or, with `overwrite`, truncate) the file at `path`. */
  static async create(path: string, opts: { overwrite?: boolean } = {}): Promise<FileSink> {
    try {
      const fh = await open(path, opts.overwrite === false ? 'wx' : 'w');
      return new FileSink(path, fh);
    } catch (e) {
      throw new DadiError('EIO', `${path}: cannot create: ${(e as Error).message}`, { cause: e });
    }
  }

  get position(): number {
    return this.pos;
  }

  async write(chunk: Uint8Array): Promise<void> {
    try {
      await this.append(chunk);
    } catch (e) {
      throw outputError(this.name, e);
    }
  }

  private async append(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return;
    if (chunk.length >= FileSink.FLUSH_AT) {
      // Big chunks go straight out: no copy, and the caller gets its buffer back when we return.
      await this.drain();
      for (let done = 0; done < chunk.length; ) {
        const { bytesWritten } = await this.fh.write(chunk, done, chunk.length - done, this.pos + done);
        done += bytesWritten;
      }
      this.pos += chunk.length;
      return;
    }
    // Small chunks are batched; copy them because callers reuse their buffers.
    this.pending.push(Uint8Array.from(chunk));
    this.pendingBytes += chunk.length;
    this.pos += chunk.length;
    if (this.pendingBytes >= FileSink.FLUSH_AT) await this.drain();
  }

  async pwrite(chunk: Uint8Array, offset: number): Promise<void> {
    if (offset + chunk.length > this.pos) {
      throw new DadiError('ERANGE', `${this.name}: pwrite past the written end`);
    }
    try {
      await this.drain();
      await this.fh.write(chunk, 0, chunk.length, offset);
    } catch (e) {
      throw outputError(this.name, e);
    }
  }

  private async drain(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const start = this.pos - this.pendingBytes;
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh.writev(bufs, start);
  }

  async end(): Promise<void> {
    try {
      await this.drain();
    } catch (e) {
      throw outputError(this.name, e);
    }
    if (this.ownsHandle) await this.fh.close();
  }
}

/** A sink collecting everything in memory (tests, small outputs). */
export class MemorySink implements Sink {
  private chunks: Uint8Array[] = [];
  private pos = 0;
  private joined: Buffer | undefined;
  constructor(readonly name = 'memory') {}
  get position(): number {
    return this.pos;
  }
  async write(chunk: Uint8Array): Promise<void> {
    try {
      await this.append(chunk);
    } catch (e) {
      throw outputError(this.name, e);
    }
  }

  private async append(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return;
    this.chunks.push(Uint8Array.from(chunk));
    this.pos += chunk.length;
    this.joined = undefined;
  }
  async pwrite(chunk: Uint8Array, offset: number): Promise<void> {
    if (offset + chunk.length > this.pos) {
      throw new DadiError('ERANGE', `${this.name}: pwrite past the written end`);
    }
    const all = this.bytes();
    all.set(chunk, offset);
  }
  async end(): Promise<void> {}
  /** Everything written so far. */
  bytes(): Buffer {
    if (!this.joined) {
      this.joined = Buffer.concat(this.chunks);
      this.chunks = [this.joined];
    }
    return this.joined;
  }
}
