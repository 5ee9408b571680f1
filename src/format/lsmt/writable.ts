// The writable (RW) layer on local files (spec §2.5c/d, §2.8): an append-only data file plus an
// index file of mappings in write order, or the sparse variant (one file, identity mapping).
// Create, open (index replay), write, discard, flush, resize, commit, close-seal.
// Not a stack: combo.ts puts one of these over lower layers.

import { unlink } from 'node:fs/promises';
import type { BlockFile, ExtentSource, WritableBlockFile } from '../../blockfile/blockfile.js';
import { LocalFile } from '../../blockfile/local.js';
import { alignUp, checkRead, readExact } from '../../blockfile/range.js';
import { hasCompressedBlocks, type Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { type CommitOptions, type CommitResult, commitLayer } from './commit.js';
import {
  DATA_START_SECTOR,
  HT_SPACE,
  MAX_IO_SIZE,
  MAX_RW_INDEX_SIZE,
  MAX_SEGMENT_LENGTH,
  SECTOR,
} from './constants.js';
import {
  checkVirtualSize,
  decodeHeader,
  encodeHeader,
  Flags,
  HEADER_LAYOUT,
  isDataFile,
  isHeader,
  isSealed,
  isSparse,
  type LsmtHeader,
} from './header.js';
import { MutableIndex } from './mutable-index.js';
import { checkAligned, checkRange, mappedExtents, readMapped } from './read.js';
import { decodeSegment, encodeSegment, isInvalidEntry, SEGMENT_BYTES } from './segment.js';
import type { SegmentIndex } from './segment-index.js';
import { NULL_UUID, normalizeUuid, randomUuid, uuidOrNull } from './uuid.js';

export interface CreateWritableOptions {
  /** Virtual disk size in bytes. */
  virtualSize: number;
  /** uuid of the layer below (default: null). */
  parentUuid?: string;
  /** uuid of this layer (default: random v4). */
  uuid?: string;
  /** Sparse layer: the data file is the disk image at offset 4096; the index file is left empty. */
  sparse?: boolean;
}

export interface OpenWritableOptions {
  /** Open the files read-only (reads and commit only). */
  readOnly?: boolean;
}

const REPLAY_BATCH = 65536; // index entries read per batch at open
const SCAN_CHUNK = 1 << 20; // sparse scan read size
const SCAN_BLOCK = 4096; // sparse scan granularity

/** What a writable layer keeps its data and index in: a LocalFile, or a scratch file (blockfile/scratch.ts). */
export type LayerFile = WritableBlockFile & { truncate(size: number): Promise<void> };

export class WritableLayer implements WritableBlockFile, ExtentSource {
  private vsize: number;
  private dataEnd: number;
  private indexEnd: number;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly files: BlockFile[];

  private constructor(
    /** The data file (header, then appended data; or the sparse image). */
    readonly dataFile: LayerFile,
    /** The index file (absent for sparse layers). */
    readonly indexFile: LayerFile | undefined,
    /** The in-memory index (tag 0). */
    readonly index: MutableIndex,
    readonly sparse: boolean,
    readonly readOnly: boolean,
    /** This layer's uuid, upper case. */
    readonly uuid: string,
    readonly parentUuid: string,
    vsize: number,
    indexEnd: number,
  ) {
    this.vsize = vsize;
    this.dataEnd = alignUp(dataFile.size, SECTOR);
    this.indexEnd = indexEnd;
    this.files = [dataFile];
  }

  /**
   * Create a new RW layer (`overlaybd-create`); both files are created exclusively.
   * @example const rw = await WritableLayer.create('l.data', 'l.index', { virtualSize: 64 * 2 ** 30 });
   */
  static async create(dataPath: string, indexPath: string, opts: CreateWritableOptions): Promise<WritableLayer> {
    checkCreate(dataPath, opts);
    const data = await LocalFile.create(dataPath);
    let index: LocalFile | undefined;
    try {
      index = await LocalFile.create(indexPath);
      return await WritableLayer.createIn(data, index, opts);
    } catch (e) {
      await data.close();
      await index?.close();
      await unlink(dataPath).catch(() => {});
      if (index) await unlink(indexPath).catch(() => {});
      throw e;
    }
  }

  /**
   * Create a new RW layer in two empty files of the caller's (a conversion's scratch files); the
   * layer owns them from here: closing it closes them, also when creating fails.
   */
  static async createIn(data: LayerFile, index: LayerFile, opts: CreateWritableOptions): Promise<WritableLayer> {
    const { virtualSize } = opts;
    try {
      checkCreate(data.name, opts);
      const uuid = opts.uuid !== undefined ? normalizeUuid(opts.uuid) : randomUuid();
      const parentUuid = opts.parentUuid !== undefined ? normalizeUuid(opts.parentUuid, 'parent uuid') : NULL_UUID;
      const sparse = !!opts.sparse;
      const fields = { virtualSize, uuid, parentUuid };
      const dataHeader = encodeHeader({ flags: sparse ? Flags.rwDataSparse : Flags.rwData, ...fields });
      if (sparse) {
        await data.write(dataHeader, 0);
        await data.truncate(virtualSize + HT_SPACE);
        await index.close();
      } else {
        // Two files: both headers at once (a mount waits for them).
        await Promise.all([
          data.write(dataHeader, 0),
          index.write(encodeHeader({ flags: Flags.rwIndex, indexOffset: HT_SPACE, ...fields }), 0),
        ]);
      }
      return new WritableLayer(
        data,
        sparse ? undefined : index,
        new MutableIndex(),
        sparse,
        false,
        uuid,
        parentUuid,
        virtualSize,
        HT_SPACE,
      );
    } catch (e) {
      await data.close();
      await index.close();
      throw e;
    }
  }

  /**
   * Open an existing RW layer: replay the index file in file order (later records win), or for a
   * sparse layer rebuild the index by scanning the data file. Node has no SEEK_DATA, so the scan
   * reads the whole image and treats all-zero 4 KiB blocks as holes (O(virtual size) I/O; holes
   * read fast, and content is the same as with real hole detection).
   */
  static async open(dataPath: string, indexPath?: string, opts: OpenWritableOptions = {}): Promise<WritableLayer> {
    const readOnly = !!opts.readOnly;
    const data = await LocalFile.open(dataPath, { writable: !readOnly });
    let index: LocalFile | undefined;
    try {
      const dh = await readHeader(data, 'data file header');
      if (!isHeader(dh)) throw new DadiError('EFORMAT', `${dataPath}: lsmt data file: header flag not set`);
      const mi = new MutableIndex();
      if (isSparse(dh)) {
        await scanSparse(data, mi);
        return new WritableLayer(
          data,
          undefined,
          mi,
          true,
          readOnly,
          uuidOrNull(dh.uuid),
          uuidOrNull(dh.parentUuid),
          dh.virtualSize,
          0,
        );
      }
      if (indexPath === undefined)
        throw new DadiError('EINVAL', `${dataPath}: an append-only RW layer needs its index file`);
      index = await LocalFile.open(indexPath, { writable: !readOnly });
      const ih = await readHeader(index, 'index file header');
      if (!isHeader(ih) || isDataFile(ih) || isSealed(ih)) {
        throw new DadiError('EFORMAT', `${indexPath}: lsmt index file: flags 0x${ih.flags.toString(16)} (want 0x1)`);
      }
      if (ih.indexOffset !== HT_SPACE) {
        throw new DadiError('EFORMAT', `${indexPath}: lsmt index file: index_offset ${ih.indexOffset} (want 4096)`);
      }
      const count = Math.floor((index.size - HT_SPACE) / SEGMENT_BYTES);
      if (count > MAX_RW_INDEX_SIZE) {
        throw new DadiError('ERANGE', `${indexPath}: lsmt index file: ${count} entries exceed ${MAX_RW_INDEX_SIZE}`);
      }
      await replayIndex(index, count, mi, Math.floor(data.size / SECTOR));
      return new WritableLayer(
        data,
        index,
        mi,
        false,
        readOnly,
        uuidOrNull(ih.uuid),
        uuidOrNull(ih.parentUuid),
        ih.virtualSize,
        HT_SPACE + count * SEGMENT_BYTES,
      );
    } catch (e) {
      await data.close();
      await index?.close();
      throw e;
    }
  }

  get name(): string {
    return this.dataFile.name;
  }

  /** Virtual size in bytes (grows with writes past it, in memory only, as the reference does). */
  get size(): number {
    return this.vsize;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    checkRange(this.name, offset, buf.length);
    const n = Math.max(0, Math.min(buf.length, this.vsize - offset));
    if (n > 0) await readMapped(buf.subarray(0, n), offset, (b, e) => this.index.overlapping(b, e), this.files);
    return n;
  }

  extents(offset: number, length: number): AsyncIterable<{ offset: number; length: number }> {
    const end = Math.min(offset + length, this.vsize);
    return mappedExtents((b, e) => this.index.overlapping(b, e), offset, Math.max(0, end - offset));
  }

  /** Write 512-aligned data: appended to the data file, recorded in the index (split at 4 MiB). */
  async write(buf: Uint8Array, offset: number): Promise<void> {
    checkAligned(this.name, offset, buf.length);
    this.assertWritable();
    return this.exclusive(async () => {
      for (let p = 0; p < buf.length; p += MAX_IO_SIZE) {
        const piece = buf.subarray(p, Math.min(buf.length, p + MAX_IO_SIZE));
        const lba = (offset + p) / SECTOR;
        const len = piece.length / SECTOR;
        if (this.sparse) {
          await this.dataFile.write(piece, HT_SPACE + offset + p);
          this.index.insertRaw(lba, len, lba + DATA_START_SECTOR, false, 0);
        } else {
          const at = this.dataEnd;
          await this.dataFile.write(piece, at);
          this.dataEnd = at + piece.length;
          await this.record(lba, len, at / SECTOR, false);
        }
        this.vsize = Math.max(this.vsize, offset + p + piece.length);
      }
    });
  }

  /** Make a 512-aligned range read as zeros (zeroed mappings; no data is written). */
  async discard(offset: number, length: number): Promise<void> {
    checkAligned(this.name, offset, length);
    this.assertWritable();
    return this.exclusive(async () => {
      const max = MAX_SEGMENT_LENGTH * SECTOR;
      for (let p = 0; p < length; p += max) {
        const n = Math.min(max, length - p);
        const lba = (offset + p) / SECTOR;
        if (this.sparse) {
          this.index.insertRaw(lba, n / SECTOR, lba + DATA_START_SECTOR, true, 0);
          await this.dataFile.discard(HT_SPACE + offset + p, n);
        } else {
          await this.record(lba, n / SECTOR, this.dataEnd / SECTOR, true);
        }
      }
    });
  }

  /** fsync the data and index files. */
  flush(): Promise<void> {
    return this.exclusive(async () => {
      if (this.readOnly) return;
      await this.dataFile.flush();
      await this.indexFile?.flush();
    });
  }

  /** Set the virtual size in memory and in both headers (sparse: also re-truncate the image). */
  async updateVirtualSize(virtualSize: number): Promise<void> {
    checkRange(this.name, 0, virtualSize);
    checkVirtualSize(this.name, virtualSize);
    this.assertWritable();
    return this.exclusive(async () => {
      this.vsize = virtualSize;
      for (const f of [this.dataFile, this.indexFile]) {
        if (!f) continue;
        const h = await readExact(f, 0, HT_SPACE, 'lsmt header');
        const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
        view.setUint32(HEADER_LAYOUT.virtualSize.at, virtualSize % 2 ** 32, true);
        view.setUint32(HEADER_LAYOUT.virtualSize.at + 4, Math.floor(virtualSize / 2 ** 32), true);
        await f.write(h, 0);
      }
      if (this.sparse) {
        await this.dataFile.truncate(virtualSize + HT_SPACE);
        this.dataEnd = alignUp(this.dataFile.size, SECTOR);
      }
    });
  }

  /** A sorted snapshot of the mappings, all tagged `tag` (default 0). */
  snapshot(tag = 0): SegmentIndex {
    return this.index.toSegmentIndex(tag);
  }

  /** Compact this layer into `sink` (`overlaybd-commit data index out`), byte-identical. */
  commit(sink: Sink, opts: CommitOptions = {}): Promise<CommitResult> {
    // A data file that compressed its blocks as they were written (a conversion's) saves the
    // ZFile writer compressing them again.
    const data = this.dataFile;
    const pre = hasCompressedBlocks(data) ? { precompressed: { tag: 0, blocks: data } } : {};
    return this.exclusive(() => commitLayer(this.snapshot(0), this.files, sink, { ...pre, ...opts }));
  }

  /**
   * Close-seal in place (`overlaybd-commit --seal`, spec §2.5b): append the sorted index (rounded
   * up to 512 bytes) and a sealed trailer to the data file, then close. Open the result with
   * SealedLayer.open().
   */
  async seal(): Promise<void> {
    this.assertWritable();
    return this.exclusive(async () => {
      const h = await readHeader(this.dataFile, 'data file header');
      const sorted = this.snapshot(0);
      const entries = sorted.encode();
      const indexOffset = this.dataEnd;
      const padded = new Uint8Array(alignUp(entries.length, SECTOR));
      padded.set(entries);
      await this.dataFile.write(padded, indexOffset);
      const trailer = encodeHeader({
        flags: Flags.sealedTrailer,
        indexOffset,
        indexSize: sorted.length,
        virtualSize: h.virtualSize,
        uuid: uuidOrNull(h.uuid),
        parentUuid: uuidOrNull(h.parentUuid),
      });
      await this.dataFile.write(trailer, indexOffset + padded.length);
      await this.dataFile.flush();
      await this.closeFiles();
    });
  }

  /** Close both files after pending operations. Closing twice is harmless. */
  async close(): Promise<void> {
    const run = this.queue.then(() => this.closeFiles());
    this.queue = run.catch(() => {});
    await run;
  }

  private async closeFiles(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dataFile.close();
    await this.indexFile?.close();
  }

  /** Insert a mapping and append its record to the index file. */
  private async record(lba: number, len: number, moffset: number, zeroed: boolean): Promise<void> {
    this.index.insertRaw(lba, len, moffset, zeroed, 0);
    const rec = new Uint8Array(SEGMENT_BYTES);
    encodeSegment(new DataView(rec.buffer), 0, lba, len, moffset, zeroed, 0);
    const at = this.indexEnd;
    this.indexEnd += SEGMENT_BYTES;
    await this.indexFile!.write(rec, at);
  }

  private assertWritable(): void {
    if (this.readOnly) throw new DadiError('EINVAL', `${this.name}: writable layer opened read-only`);
    if (this.closed) throw new DadiError('EINVAL', `${this.name}: writable layer is closed`);
  }

  /** Run `fn` after every earlier operation (writes apply in issue order). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new DadiError('EINVAL', `${this.name}: writable layer is closed`);
      return fn();
    });
    this.queue = run.catch(() => {});
    return run;
  }
}

function checkCreate(name: string, opts: CreateWritableOptions): void {
  checkRange(name, 0, opts.virtualSize);
  checkVirtualSize(name, opts.virtualSize);
}

async function readHeader(f: BlockFile, what: string): Promise<LsmtHeader> {
  if (f.size < HT_SPACE) throw new DadiError('EFORMAT', `${f.name}: lsmt ${what}: file is only ${f.size} bytes`);
  const h = decodeHeader(await readExact(f, 0, HT_SPACE, `lsmt ${what}`), `${f.name}: lsmt ${what}`);
  checkVirtualSize(`${f.name}: lsmt ${what}`, h.virtualSize);
  return h;
}

/** Replay an RW index file in file order (spec §2.8 open step 2–3). */
async function replayIndex(f: LocalFile, count: number, mi: MutableIndex, dataSectors: number): Promise<void> {
  for (let first = 0; first < count; first += REPLAY_BATCH) {
    const n = Math.min(REPLAY_BATCH, count - first);
    const bytes = await readExact(f, HT_SPACE + first * SEGMENT_BYTES, n * SEGMENT_BYTES, 'lsmt index');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) {
      const pos = i * SEGMENT_BYTES;
      if (isInvalidEntry(view, pos)) continue;
      const s = decodeSegment(view, pos);
      const m = s.moffset;
      const ok = s.zeroed
        ? m >= DATA_START_SECTOR && m <= dataSectors
        : m >= DATA_START_SECTOR && m < dataSectors && m + s.length <= dataSectors;
      if (!ok) {
        throw new DadiError(
          'ERANGE',
          `${f.name}: lsmt index record ${first + i} maps sectors [${m}, ${m + s.length}) outside the data file (${dataSectors} sectors)`,
        );
      }
      mi.insertRaw(s.offset, s.length, m, s.zeroed, 0);
    }
  }
}

/** Rebuild a sparse layer's index: non-zero 4 KiB blocks of the image are data. */
async function scanSparse(f: LocalFile, mi: MutableIndex): Promise<void> {
  const buf = Buffer.alloc(SCAN_CHUNK);
  const zero = Buffer.alloc(SCAN_CHUNK);
  let runStart = -1;
  const endRun = (end: number) => {
    if (runStart < 0) return;
    for (let b = runStart; b < end; b += MAX_SEGMENT_LENGTH * SECTOR) {
      const len = Math.min(MAX_SEGMENT_LENGTH * SECTOR, end - b);
      mi.insertRaw((b - HT_SPACE) / SECTOR, Math.floor(len / SECTOR), b / SECTOR, false, 0);
    }
    runStart = -1;
  };
  for (let pos = HT_SPACE; pos < f.size; pos += SCAN_CHUNK) {
    const n = await f.read(buf, pos);
    if (n === 0) break;
    if (buf.compare(zero, 0, n, 0, n) === 0) {
      endRun(pos);
      continue;
    }
    for (let b = 0; b < n; b += SCAN_BLOCK) {
      const e = Math.min(n, b + SCAN_BLOCK);
      if (buf.compare(zero, 0, e - b, b, e) === 0) endRun(pos + b);
      else if (runStart < 0) runStart = pos + b;
    }
  }
  endRun(f.size - ((f.size - HT_SPACE) % SECTOR));
}
