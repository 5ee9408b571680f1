// The files of one cached blob (K.data + K.map, see layout.ts) and its in-memory page bitmap:
// load and validate, create, write data, record pages, release. Not policy: when to write, what to
// evict and all ordering between blobs live in cache.ts, which runs every mutation on one queue.
//
// Invariant (what makes it crash-safe): a page's bit reaches the map file only after its bytes
// were written to the data file and fdatasync'ed, and the in-memory bitmap is what gets written,
// where bits are set only after that sync. A bit that did not reach the disk just means a refetch.

import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncPath } from '../util/atomic-output.js';
import { clearRange, clearRuns, setRange } from './bitmap.js';
import {
  bitmapBytes,
  dataEnd,
  decodeMapHeader,
  decodeTrailer,
  encodeMapHeader,
  encodeTrailer,
  MAP_HEADER_SIZE,
  mapFileSize,
  PAGE,
  pageCount,
  TRAILER_SIZE,
} from './layout.js';

export interface StorePaths {
  readonly key: string;
  readonly dataPath: string;
  readonly mapPath: string;
}

export class Store {
  dataFh: FileHandle | undefined;
  mapFh: FileHandle | undefined;
  readonly bitmap: Uint8Array;
  readonly pages: number;
  /** Operations using the file handles right now (hit reads, writes); files close at 0 once retired. */
  private refs = 0;
  /** No longer the blob's live store (evicted or closed): nothing new is recorded in it. */
  retired = false;
  /** Creating or writing its files failed: it stays an in-memory-empty store. */
  broken = false;
  private closing: Promise<void> | undefined;
  private onRetire: (() => void) | undefined;

  constructor(
    readonly paths: StorePaths,
    readonly size: number,
    bitmap?: Uint8Array,
  ) {
    this.pages = pageCount(size);
    this.bitmap = bitmap ?? new Uint8Array(bitmapBytes(size));
  }

  get hasFiles(): boolean {
    return this.dataFh !== undefined;
  }

  /** Set the callback run once when the store is retired (the cache unregisters it). */
  whenRetired(fn: () => void): void {
    this.onRetire = fn;
  }

  acquire(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0 && this.retired) void this.closeFiles();
  }

  /** Stop recording into this store; its files close when the last operation using them ends. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.onRetire?.();
    if (this.refs === 0) void this.closeFiles();
  }

  /** Close the file handles (idempotent). */
  closeFiles(): Promise<void> {
    this.closing ??= (async () => {
      const fhs = [this.dataFh, this.mapFh];
      for (const fh of fhs) await fh?.close().catch(() => {});
    })();
    return this.closing;
  }

  /**
   * Load the blob's files. Returns the store and what was found: `absent` (no files), `loaded`,
   * or `reset` (files that did not validate: torn creation, another blob's size, unpaired nonce —
   * they are deleted).
   */
  static async load(paths: StorePaths, size: number): Promise<{ store: Store; status: 'absent' | 'loaded' | 'reset' }> {
    let mapFh: FileHandle | undefined;
    let dataFh: FileHandle | undefined;
    try {
      try {
        mapFh = await open(paths.mapPath, 'r+');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        // A data file without a map (if any) is replaced when the store's files are created.
        return { store: new Store(paths, size), status: 'absent' };
      }
      const mapLen = mapFileSize(size);
      const mapBuf = Buffer.alloc(mapLen);
      const { bytesRead } = await mapFh.read(mapBuf, 0, mapLen, 0);
      const h = bytesRead === mapLen ? decodeMapHeader(mapBuf) : undefined;
      if (h && h.size === size && h.key === paths.key) {
        dataFh = await open(paths.dataPath, 'r+');
        const tb = Buffer.alloc(TRAILER_SIZE);
        const r = await dataFh.read(tb, 0, TRAILER_SIZE, dataEnd(size));
        const t = r.bytesRead === TRAILER_SIZE ? decodeTrailer(tb) : undefined;
        if (t && t.size === size && t.nonce === h.nonce) {
          const bitmap = new Uint8Array(mapBuf.buffer, mapBuf.byteOffset + MAP_HEADER_SIZE, bitmapBytes(size));
          const pages = pageCount(size);
          if (pages & 7) bitmap[bitmap.length - 1]! &= (1 << (pages & 7)) - 1;
          const store = new Store(paths, size, bitmap);
          store.mapFh = mapFh;
          store.dataFh = dataFh;
          return { store, status: 'loaded' };
        }
      }
    } catch {
      // Unreadable files are treated like invalid ones: start over.
    }
    await mapFh?.close().catch(() => {});
    await dataFh?.close().catch(() => {});
    await unlinkQuiet(paths.mapPath);
    await unlinkQuiet(paths.dataPath);
    return { store: new Store(paths, size), status: 'reset' };
  }

  /**
   * Create both files, each written under a temporary name, synced and renamed into place: the
   * data file (with its trailer) first, the directory synced, then the map. A crash leaves either
   * nothing, a data file without a map (an orphan, removed at start-up) or a valid empty pair.
   */
  async create(): Promise<void> {
    const nonce = randomBytes(8).readBigUInt64LE(0);
    const suffix = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const dataTmp = this.paths.dataPath + suffix;
    const mapTmp = this.paths.mapPath + suffix;
    let dataFh: FileHandle | undefined;
    let mapFh: FileHandle | undefined;
    try {
      dataFh = await open(dataTmp, 'wx+');
      const end = dataEnd(this.size);
      await dataFh.truncate(end + TRAILER_SIZE);
      await writeAll(dataFh, encodeTrailer(this.size, nonce), end);
      await dataFh.datasync();
      await rename(dataTmp, this.paths.dataPath);
      await syncPath(dirname(this.paths.dataPath));
      mapFh = await open(mapTmp, 'wx+');
      await writeAll(mapFh, encodeMapHeader({ size: this.size, nonce, key: this.paths.key }), 0);
      await mapFh.truncate(mapFileSize(this.size));
      await mapFh.datasync();
      await rename(mapTmp, this.paths.mapPath);
    } catch (e) {
      await dataFh?.close().catch(() => {});
      await mapFh?.close().catch(() => {});
      await unlinkQuiet(dataTmp);
      await unlinkQuiet(mapTmp);
      throw e;
    }
    this.dataFh = dataFh;
    this.mapFh = mapFh;
  }

  /** The runs [lo, hi) in bytes of pages in [lo, hi) (page aligned lo) not yet cached. */
  uncachedRuns(lo: number, hi: number): Array<[number, number]> {
    return clearRuns(this.bitmap, Math.floor(lo / PAGE), Math.ceil(hi / PAGE)).map(([a, b]) => [
      a * PAGE,
      Math.min(b * PAGE, hi),
    ]);
  }

  /** Mark byte range [lo, hi) cached in memory (pages outward); returns the bitmap byte range touched. */
  mark(lo: number, hi: number): [number, number] {
    const p0 = Math.floor(lo / PAGE);
    const p1 = Math.ceil(hi / PAGE);
    setRange(this.bitmap, p0, p1);
    return [p0 >> 3, ((p1 - 1) >> 3) + 1];
  }

  /** Clear byte range [lo, hi) in memory (pages outward); returns the bitmap byte range touched. */
  unmark(lo: number, hi: number): [number, number] {
    const p0 = Math.floor(lo / PAGE);
    const p1 = Math.min(this.pages, Math.ceil(hi / PAGE));
    if (p1 <= p0) return [0, 0];
    clearRange(this.bitmap, p0, p1);
    return [p0 >> 3, ((p1 - 1) >> 3) + 1];
  }

  /** Write bitmap bytes [b0, b1) from memory to the map file. */
  async writeBitmap(b0: number, b1: number): Promise<void> {
    if (!this.mapFh || b1 <= b0) return;
    await writeAll(this.mapFh, this.bitmap.subarray(b0, b1), MAP_HEADER_SIZE + b0);
  }
}

export async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
    done += bytesWritten;
  }
}

export async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
