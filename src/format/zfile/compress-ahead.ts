// Compressing a layer's data while it is written, for a commit to copy instead of compress (a
// conversion: the apply writes the ext4, the commit streams it as ZFile moments later).
//
// CompressAheadFile wraps the data file of a writable LSMT layer. Every whole block of `blockSize`
// bytes written to it at a block-aligned offset is compressed on the compress pool's worker
// threads (the same codec calls as ZFileWriter, so the same bytes) while the apply goes on. The
// workers append the stored blocks to a spill file beside it (`spillPath`), and the raw block
// never goes to the file below: the page cache takes ~110 MB of compressed blocks instead of
// ~220 MB of raw ones for the Debian base layer, nothing is held in fresh memory (a page fault
// per 4 KiB costs ~17 µs on the 2-vCPU VM: ~0.5 s of CPU for 110 MB, measured), and the commit
// (lsmt/commit.ts) hands the ZFile writer the stored bytes (readStored) instead of compressing.
// Reads of a held block read and decompress it.
//
// Why keying by the data file's offset is right: a writable layer only appends to its data file;
// a block the filesystem writes twice (bitmaps, inode tables, directories) is appended twice, and
// the commit copies the last copy, whose compressed bytes were made from exactly those contents.
// A write, discard or truncate that touches a held block anyway first puts the block's raw bytes
// into the file below and drops the compressed copy, so the stored bytes always match the file.
//
// Bounds: at most IN_FLIGHT batches (1 MiB each) are with the workers; the writer waits for the
// oldest beyond that. A worker that fails fails the file (reads and the commit reject): the raw
// bytes went with the job.

import { type FileHandle, open, rm } from 'node:fs/promises';
import type { WritableBlockFile } from '../../blockfile/blockfile.js';
import { checkRead } from '../../blockfile/range.js';
import type { CompressedBlocks } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { type BlockCodec, codecFor, type ZFileAlgorithm } from './codec.js';
import { type CompressPool, compressPool, defaultThreads, type SpilledResult } from './compress-pool.js';
import { blockFormat } from './writer.js';

/** A data file a writable layer can own: it also truncates. */
export type TruncatableFile = WritableBlockFile & { truncate(size: number): Promise<void> };

export interface CompressAheadOptions {
  algorithm: ZFileAlgorithm;
  blockSize: number;
  /** Where the compressed blocks go (created on first need, removed on close; must not exist). */
  spillPath: string;
  /** CRC per block, as the ZFile writer's `verify` (default true). */
  verify?: boolean;
  /** Worker threads (default: the ZFile writer's default); 0 turns compressing ahead off. */
  threads?: number;
}

/** Raw bytes per worker job (a multiple of every ZFile block size), as the ZFile writer's. */
const JOB_BYTES = 1 << 20;
/** Batches with the workers at once, at most. */
const IN_FLIGHT = 6;

interface Batch {
  firstBlock: number;
  count: number;
  /** Settles once compressed (never rejects; a failure sets the file's `failed`). */
  done: Promise<void>;
  /** Set once compressed: where in the spill file each stored block starts (count + 1 offsets). */
  starts?: Float64Array;
  /** Blocks of this batch still held. */
  live: number;
}

export class CompressAheadFile implements TruncatableFile, CompressedBlocks {
  readonly format: string;
  readonly blockSize: number;
  private readonly spillPath: string;
  private readonly algorithm: ZFileAlgorithm;
  private readonly codec: BlockCodec;
  private readonly verify: boolean;
  private readonly pool: CompressPool | undefined;
  /** Per block of the file: 1 + the index of the batch holding it, or 0 (the file below has it). */
  private owner = new Int32Array(1024);
  private readonly batches: (Batch | undefined)[] = [];
  /** The batch being filled: raw bytes of consecutive whole blocks from `fillStart`, not yet held. */
  private fill: ArrayBuffer | undefined;
  private fillStart = 0;
  private fillBytes = 0;
  private readonly freeInputs: ArrayBuffer[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** The compressed blocks, appended by the workers (`spillEnd[0]`: its length so far). */
  private spill: FileHandle | undefined;
  private readonly spillEnd = new BigInt64Array(new SharedArrayBuffer(8));
  /** Where readStored reads into (reused: its callers copy before they read again). */
  private readBuf = new Uint8Array(0);
  private _size = 0;
  private closed = false;
  private failed: Error | undefined;
  /** Blocks compressed ahead (for tests and measurements). */
  compressedBlocks = 0;

  constructor(
    readonly inner: TruncatableFile,
    opts: CompressAheadOptions,
  ) {
    this.algorithm = opts.algorithm;
    this.blockSize = opts.blockSize;
    this.codec = codecFor(opts.algorithm, inner.name);
    this.verify = opts.verify ?? true;
    this.format = blockFormat(this.algorithm, this.blockSize, this.verify);
    this.spillPath = opts.spillPath;
    const threads = opts.threads ?? defaultThreads();
    this.pool = threads > 0 ? compressPool(threads) : undefined;
    this._size = inner.size;
  }

  get name(): string {
    return this.inner.name;
  }

  get size(): number {
    return this._size;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    const n = Math.max(0, Math.min(buf.length, this._size - offset));
    if (n === 0) return 0;
    const want = buf.subarray(0, n);
    const got = await this.inner.read(want, offset);
    want.fill(0, got); // held blocks past the end of the file below
    const bs = this.blockSize;
    for (let b = Math.floor(offset / bs); b * bs < offset + n; b++) {
      if (!this.heldBy(b)) continue;
      const raw = await this.rawBlock(b);
      const from = Math.max(offset, b * bs);
      const to = Math.min(offset + n, (b + 1) * bs);
      want.set(raw.subarray(from - b * bs, to - b * bs), from - offset);
    }
    // Blocks still being collected.
    const from = Math.max(offset, this.fillStart);
    const to = Math.min(offset + n, this.fillStart + this.fillBytes);
    if (this.fill && from < to) want.set(new Uint8Array(this.fill, from - this.fillStart, to - from), from - offset);
    return n;
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (this.closed) throw new DadiError('EINVAL', `${this.name}: write after close`);
    await this.release(offset, buf.length);
    const bs = this.blockSize;
    // The whole blocks this write holds: [first, last).
    let first = Math.ceil(offset / bs) * bs;
    let last = Math.floor((offset + buf.length) / bs) * bs;
    if (!this.pool || this.failed || last <= first) first = last = offset;
    if (first > offset) await this.inner.write(buf.subarray(0, first - offset), offset);
    if (last < offset + buf.length) await this.inner.write(buf.subarray(last - offset), last);
    this._size = Math.max(this._size, offset + buf.length);
    if (last > first) await this.collect(buf.subarray(first - offset, last - offset), first);
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.release(offset, length);
    await this.inner.discard(offset, length);
  }

  async truncate(size: number): Promise<void> {
    await this.release(size, Math.max(0, this._size - size), true);
    await this.inner.truncate(size);
    this._size = size;
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  /** Hand what is still collected to the workers and wait for them; rejects if one failed. */
  async settle(): Promise<void> {
    await this.submit();
    await Promise.all(this.inFlight);
    if (this.failed) throw this.failed;
  }

  /** How many consecutive blocks from `offset` (a block boundary), `max` at most, are held compressed. */
  heldRun(offset: number, max: number): number {
    const bs = this.blockSize;
    if (offset % bs !== 0) return 0;
    let n = 0;
    for (let b = offset / bs; n < max && this.heldBy(b)?.starts; b++) n++;
    return n;
  }

  /**
   * The stored bytes (compressed + CRC) of `count` held blocks from `offset` (see heldRun). They
   * are views of a buffer the next call reuses: copy them before calling again.
   */
  readStored(offset: number, count: number): Promise<Uint8Array[]> {
    return this.readStoredInto(offset, count, (bytes) => {
      if (this.readBuf.length < bytes) this.readBuf = new Uint8Array(Math.max(bytes, 1 << 20));
      return this.readBuf;
    });
  }

  /** readStored into the buffer `buffer(bytes)` returns. */
  private async readStoredInto(
    offset: number,
    count: number,
    buffer: (bytes: number) => Uint8Array,
  ): Promise<Uint8Array[]> {
    const bs = this.blockSize;
    // Where each block's bytes lie in the spill file.
    const from = new Float64Array(count);
    const to = new Float64Array(count);
    for (let k = 0; k < count; k++) {
      const b = offset / bs + k;
      const batch = this.heldBy(b);
      if (!batch?.starts || offset % bs !== 0) {
        throw new DadiError('EINVAL', `${this.name}: the block at ${offset + k * bs} is not held compressed`);
      }
      from[k] = batch.starts[b - batch.firstBlock]!;
      to[k] = batch.starts[b - batch.firstBlock + 1]!;
    }
    let bytes = 0;
    for (let k = 0; k < count; k++) bytes += to[k]! - from[k]!;
    const buf = buffer(bytes);
    const out: Uint8Array[] = [];
    let fill = 0;
    for (let k = 0; k < count; ) {
      // Blocks that lie back to back in the spill file are read at once.
      let end = k + 1;
      while (end < count && from[end] === to[end - 1]) end++;
      const length = to[end - 1]! - from[k]!;
      const { bytesRead } = await this.spill!.read(buf, fill, length, from[k]!);
      if (bytesRead !== length) throw new DadiError('EIO', `${this.spillPath}: short read at ${from[k]}`);
      for (; k < end; k++) {
        const len = to[k]! - from[k]!;
        out.push(buf.subarray(fill, fill + len));
        fill += len;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.inFlight);
    this.batches.length = 0;
    this.owner = new Int32Array(0);
    this.fill = undefined;
    try {
      await this.inner.close();
    } finally {
      if (this.spill) {
        await this.spill.close();
        await rm(this.spillPath, { force: true });
      }
    }
  }

  private heldBy(b: number): Batch | undefined {
    const id = b < this.owner.length ? this.owner[b]! - 1 : -1;
    return id >= 0 ? this.batches[id] : undefined;
  }

  /** The raw bytes of held block `b` (waits for its batch, then decompresses). */
  private async rawBlock(b: number): Promise<Uint8Array> {
    await this.heldBy(b)!.done;
    if (this.failed) throw this.failed;
    // A buffer of its own: reads run concurrently (the commit's do).
    const [stored] = await this.readStoredInto(b * this.blockSize, 1, (bytes) => new Uint8Array(bytes));
    const raw = new Uint8Array(this.blockSize);
    const body = this.verify ? stored!.subarray(0, stored!.length - 4) : stored!;
    if (this.codec.decompress(body, raw) !== this.blockSize) {
      throw new DadiError('EIO', `${this.name}: block ${b} compressed ahead does not decompress`);
    }
    return raw;
  }

  /**
   * Stop holding the blocks overlapping [offset, offset + length): their raw bytes go to the file
   * below first (unless `dropped`: a truncate removes them anyway).
   */
  private async release(offset: number, length: number, dropped = false): Promise<void> {
    const bs = this.blockSize;
    const end = Math.min(offset + length, this.owner.length * bs);
    if (offset >= end) return;
    if (this.fill && offset < this.fillStart + this.fillBytes && end > this.fillStart) await this.submit();
    for (let b = Math.floor(offset / bs); b * bs < end; b++) {
      const id = this.owner[b]! - 1;
      if (id < 0) continue;
      if (!dropped || b * bs < offset) await this.inner.write(await this.rawBlock(b), b * bs);
      this.owner[b] = 0;
      const batch = this.batches[id];
      if (batch && --batch.live === 0) {
        this.batches[id] = undefined;
      }
    }
  }

  /** Add whole blocks (at a block-aligned `offset`) to the batch being filled. */
  private async collect(data: Uint8Array, offset: number): Promise<void> {
    if (this.fill && this.fillStart + this.fillBytes !== offset) await this.submit();
    for (let p = 0; p < data.length; ) {
      if (!this.fill) {
        this.fill = this.freeInputs.pop() ?? new ArrayBuffer(JOB_BYTES);
        this.fillStart = offset + p;
        this.fillBytes = 0;
      }
      const n = Math.min(JOB_BYTES - this.fillBytes, data.length - p);
      new Uint8Array(this.fill, this.fillBytes, n).set(data.subarray(p, p + n));
      this.fillBytes += n;
      p += n;
      if (this.fillBytes === JOB_BYTES) await this.submit();
    }
  }

  /**
   * Hand the batch being filled to a worker; with no worker ready (still loading, or failed),
   * its bytes go to the file below instead and the commit compresses them.
   */
  private async submit(): Promise<void> {
    const input = this.fill;
    const length = this.fillBytes;
    const start = this.fillStart;
    this.fill = undefined;
    this.fillBytes = 0;
    if (!input || length === 0) {
      if (input) this.freeInputs.push(input);
      return;
    }
    const pool = this.pool;
    if (!pool?.ready || this.failed) {
      await this.inner.write(new Uint8Array(input, 0, length), start);
      this.freeInputs.push(input);
      return;
    }
    const bs = this.blockSize;
    const id = this.batches.length;
    const firstBlock = start / bs;
    const count = length / bs;
    let job: Promise<SpilledResult>;
    try {
      this.spill ??= await open(this.spillPath, 'wx+');
      const spill = { fd: this.spill.fd, end: this.spillEnd };
      job = pool.runToFile({ algorithm: this.algorithm, blockSize: bs, verify: this.verify, input, length, spill });
    } catch {
      await this.inner.write(new Uint8Array(input, 0, length), start);
      return;
    }
    const batch: Batch = { firstBlock, count, live: count, done: Promise.resolve() };
    batch.done = job.then(
      (r) => {
        this.freeInputs.push(r.input);
        const starts = new Float64Array(count + 1);
        starts[0] = r.offset;
        for (let k = 0; k < count; k++) starts[k + 1] = starts[k]! + r.lengths[k]!;
        batch.starts = starts;
        this.compressedBlocks += count;
      },
      (e: unknown) => {
        this.failed ??= new DadiError('EIO', `${this.name}: compressing ahead failed: ${(e as Error)?.message ?? e}`, {
          cause: e,
        });
      },
    );
    this.batches.push(batch);
    this.claim(firstBlock, count, id + 1);
    const done = batch.done;
    this.inFlight.add(done);
    void done.then(() => this.inFlight.delete(done));
    if (this.inFlight.size >= IN_FLIGHT) await Promise.race(this.inFlight);
  }

  private claim(firstBlock: number, count: number, owner: number): void {
    if (firstBlock + count > this.owner.length) {
      const grown = new Int32Array(Math.max(firstBlock + count, this.owner.length * 2));
      grown.set(this.owner);
      this.owner = grown;
    }
    this.owner.fill(owner, firstBlock, firstBlock + count);
  }
}
