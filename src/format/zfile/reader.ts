// ZFileReader: the uncompressed view of a ZFile (spec §3.5) as a BlockFile, with the jump table,
// per-block CRC checks and bounded decoding; plus `isZFile` detection (§3.6).
// Not a cache: the block cache below keeps the stored bytes; this keeps only the few blocks that
// reads within one block decoded last (recent-blocks.ts), since those are read again at once.

import type { BlockFile, PrefetchableBlockFile } from '../../blockfile/blockfile.js';
import { prefetchRange } from '../../blockfile/prefetch.js';
import { checkRead, readInto } from '../../blockfile/range.js';
import { DadiError } from '../../errors.js';
import { crc32cRaw } from '../../util/crc32c.js';
import { type BlockCodec, codecFor, type ZFileAlgorithm } from './codec.js';
import {
  decodeZFileHeader,
  hasFlag,
  ZFILE_BLOCK_CRC_SEED,
  ZFILE_HT_SPACE,
  ZFileFlag,
  type ZFileHeader,
  zfileDigestOk,
} from './header.js';
import { type BlockOffsets, blockOffsets, jumpTableBuffer } from './jump-table.js';
import { RecentBlocks } from './recent-blocks.js';

/** The reference refuses larger jump tables (MAX_ZFILE_INDEX_SIZE). */
export const MAX_ZFILE_INDEX_SIZE = 1_000_000_000;
/** Index reads are split in pieces of this size (as the reference does). */
const INDEX_PIECE = 1 << 20;
/** Index pieces read concurrently. */
const INDEX_PARALLEL = 4;
/** Compressed bytes fetched per inner read when a request spans many blocks. */
const WINDOW = 1 << 20;
/** Retries after `onCorrupt` asked for one (the reference reloads up to 3 times). */
const MAX_RETRIES = 3;
/** Scratch buffer sets kept for reuse (one per read in flight), and spare 1 MiB windows. */
const POOL_MAX = 32;
const BIG_POOL_MAX = 2;
/**
 * Largest stored block accepted: the reference compresses into a (block_size + 512)-byte buffer,
 * so no reference file exceeds block_size + 516; the slack keeps odd encoders readable.
 */
const storedLimit = (blockSize: number) => blockSize + 1024;
/** Decoded bytes kept for reads within one block (recent-blocks.ts): 64 blocks of 4 KiB. */
const RECENT_BYTES = 256 * 1024;

export interface ZFileCorruptInfo {
  /** Block number. */
  block: number;
  /** Where the stored block (compressed bytes + CRC) is in the inner file. */
  offset: number;
  length: number;
  reason: 'checksum' | 'decode';
}

export interface ZFileOpenOptions {
  /**
   * Called when a block fails its CRC or does not decode. Evict [offset, offset+length) from any
   * cache below and return true to make the reader fetch the block again (at most 3 times, like the
   * reference); return false to fail at once with ECORRUPT.
   */
  onCorrupt?: (info: ZFileCorruptInfo) => boolean | Promise<boolean>;
}

interface Scratch {
  /** Compressed bytes of the blocks being decoded. */
  win: Uint8Array;
  /** One decompressed block, for blocks the request covers only partly. */
  raw: Uint8Array;
}

export class ZFileReader implements PrefetchableBlockFile {
  readonly name: string;
  /** The uncompressed size (original_file_size). */
  readonly size: number;
  readonly blockSize: number;
  readonly blockCount: number;
  readonly algorithm: ZFileAlgorithm;
  /** Each block carries a CRC (the struct's verify byte). */
  readonly verify: boolean;
  private readonly codec: BlockCodec;
  private readonly pool: Scratch[] = [];
  private readonly bigWindows: Uint8Array[] = [];
  private readonly recent: RecentBlocks;
  private closed = false;

  private constructor(
    private readonly inner: BlockFile,
    /** The struct at offset 0, as stored. */
    readonly header: ZFileHeader,
    /** The struct at the end, when it was read (trailer mode); undefined in header-overwrite mode. */
    readonly trailer: ZFileHeader | undefined,
    /** Stored start of each block in `inner`; entry `blockCount` is where the last block ends. */
    private readonly offsets: Float64Array,
    private readonly maxStored: number,
    private readonly opts: ZFileOpenOptions,
  ) {
    const ht = trailer ?? header;
    this.name = `zfile of ${inner.name}`;
    this.size = ht.originalFileSize;
    this.blockSize = ht.blockSize;
    this.blockCount = ht.indexSize;
    this.codec = codecFor(ht.algo, inner.name);
    this.algorithm = this.codec.algorithm;
    this.verify = ht.verify !== 0;
    this.recent = new RecentBlocks(Math.max(4, Math.floor(RECENT_BYTES / this.blockSize)));
  }

  /**
   * Open a ZFile: check the header (and its digest when flagged), take the index fields from the
   * header (header-overwrite mode) or the trailer, and load the jump table.
   *
   * @example const z = await ZFileReader.open(await LocalFile.open('layer.zfile'));
   */
  static async open(file: BlockFile, opts: ZFileOpenOptions = {}): Promise<ZFileReader> {
    const z = await ZFileReader.openChecked(file, opts);
    if (!z) throw new DadiError('EFORMAT', `${file.name}: not a ZFile (bad magic or no header flag)`);
    return z;
  }

  /**
   * `isZFile` and `open` with one read of the header: undefined where isZFile is false, the
   * opened reader otherwise (and open's errors).
   */
  static async openIfZFile(file: BlockFile, opts: ZFileOpenOptions = {}): Promise<ZFileReader | undefined> {
    if (file.size < ZFILE_HT_SPACE) return undefined;
    return ZFileReader.openChecked(file, opts);
  }

  /**
   * open's work, undefined where the header has no ZFile magic or header flag. The trailer is read
   * alongside the header, so a ZFile in trailer mode costs one round of reads before its jump
   * table, not two.
   */
  private static async openChecked(file: BlockFile, opts: ZFileOpenOptions): Promise<ZFileReader | undefined> {
    const trailerRead = speculativeTrailer(file);
    const header = await readStruct(file, 0, 'header');
    if (!header.ht.magicOk || !hasFlag(header.ht.flags, ZFileFlag.HEADER)) return undefined;
    checkDigest(file.name, 'header', header);
    const name = file.name;
    let trailer: ZFileHeader | undefined;
    let ht = header.ht;
    let indexLimit = file.size; // the jump table must end before this
    if (!hasFlag(ht.flags, ZFileFlag.HEADER_OVERWRITE)) {
      if (!hasFlag(ht.flags, ZFileFlag.DATA)) {
        throw new DadiError('EFORMAT', `${name}: ZFile header is not of a data file`);
      }
      if (!trailerRead) {
        throw new DadiError('EFORMAT', `${name}: ZFile too small (${file.size} bytes) to hold a trailer`);
      }
      const t = await trailerRead;
      const f = t.ht.flags;
      if (
        !t.ht.magicOk ||
        hasFlag(f, ZFileFlag.HEADER) ||
        !hasFlag(f, ZFileFlag.DATA) ||
        !hasFlag(f, ZFileFlag.SEALED)
      ) {
        throw new DadiError('EFORMAT', `${name}: bad ZFile trailer (magic, trailer, data or sealed flag)`);
      }
      checkDigest(name, 'trailer', t);
      trailer = t.ht;
      ht = t.ht;
      indexLimit = file.size - ZFILE_HT_SPACE;
    }

    validateStruct(name, ht, indexLimit);
    codecFor(ht.algo, name); // EUNSUPPORTED early
    const { offsets, maxStored } = await loadJumpTable(file, ht);
    return new ZFileReader(file, header.ht, trailer, offsets, maxStored, opts);
  }

  /** Where block `k`'s stored bytes start in the inner file (k = blockCount gives the end). */
  blockOffset(k: number): number {
    return this.offsets[k]!;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    if (offset >= this.size || buf.length === 0) return 0;
    const end = Math.min(this.size, offset + buf.length);
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    if (first === last) {
      // Within one block: from the blocks decoded last, joining a decode of it in flight, or decoded now.
      const from = offset - first * bs;
      const count = end - offset;
      const block =
        this.recent.get(first) ??
        (await this.recent.decode(first, this.blockLength(first), (into) => this.decodeInto(first, into)));
      buf.set(from === 0 && count === block.length ? block : block.subarray(from, from + count));
      return count;
    }
    const off = this.offsets;
    const s = this.pool.pop() ?? this.newScratch();
    let big: Uint8Array | undefined; // a 1 MiB window, for requests spanning many blocks
    try {
      let out = 0;
      for (let i = first; i <= last; ) {
        // One inner read for as many whole blocks as fit in the window (at least one).
        const start = off[i]!;
        let j = i + 1;
        while (j <= last && off[j + 1]! - start <= WINDOW) j++;
        const len = off[j]! - start;
        let win = s.win;
        if (len > win.length) win = big ??= this.bigWindows.pop() ?? new Uint8Array(Math.max(WINDOW, len));
        const n = await this.inner.read(win.subarray(0, len), start);
        if (n !== len) throw this.shortRead(i, j, start, len, n);
        for (let k = i; k < j; k++) {
          const blockStart = k * bs;
          const from = offset > blockStart ? offset - blockStart : 0;
          const count = (end < blockStart + bs ? end - blockStart : bs) - from;
          const b = off[k]! - start;
          const e = off[k + 1]! - start;
          const bad = this.decodeBlock(k, win, b, e, buf, out, from, count, s);
          if (bad) await this.recover(k, bad, win.subarray(b, e), buf, out, from, count, s);
          out += count;
        }
        i = j;
      }
      return out;
    } finally {
      if (this.pool.length < POOL_MAX) this.pool.push(s);
      if (big && this.bigWindows.length < BIG_POOL_MAX) this.bigWindows.push(big);
    }
  }

  /**
   * Bring the stored blocks holding [offset, offset+length) into the cache below, undecoded: a
   * prefetcher that needs no bytes in hand pays no decompression (a later read checks and decodes).
   */
  async prefetch(offset: number, length: number): Promise<void> {
    checkRead(this.name, offset, this.closed);
    if (Math.min(this.size, offset + length) <= offset) return;
    const [start, end] = this.storedSpan(offset, length);
    await prefetchRange(this.inner, start, end - start);
  }

  /**
   * Where the inner file stores [offset, offset+length): from its first block's stored start to its
   * last block's stored end (at least one block; offsets past the end count as the last block).
   */
  storedSpan(offset: number, length: number): [number, number] {
    const bs = this.blockSize;
    const lastBlock = Math.max(0, Math.ceil(this.size / bs) - 1);
    const first = Math.min(lastBlock, Math.floor(offset / bs));
    const last = Math.min(lastBlock, Math.floor((offset + Math.max(1, length) - 1) / bs));
    return [this.offsets[first]!, this.offsets[last + 1]!];
  }

  /**
   * Check the CRC of every block without decompressing (like `overlaybd-zfile --verify`).
   * Throws ECORRUPT naming the first bad block; EUNSUPPORTED if the file has no block CRCs.
   */
  async verifyBlocks(): Promise<void> {
    if (!this.verify) throw new DadiError('EUNSUPPORTED', `${this.inner.name}: ZFile has no block checksums`);
    const off = this.offsets;
    const n = this.blockCount;
    const win = Buffer.allocUnsafe(Math.max(4 * WINDOW, this.maxStored));
    for (let i = 0; i < n; ) {
      const start = off[i]!;
      let j = i + 1;
      while (j < n && off[j + 1]! - start <= win.length) j++;
      await readInto(this.inner, win.subarray(0, off[j]! - start), start, `ZFile blocks ${i}..${j - 1}`);
      for (let k = i; k < j; k++) {
        const stored = win.subarray(off[k]! - start, off[k + 1]! - start);
        if (!crcOk(stored)) throw this.corrupt(k, 'checksum', stored);
      }
      i = j;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.length = 0;
    this.recent.clear();
    this.bigWindows.length = 0;
    await this.inner.close();
  }

  /** Decoded length of block `k`: the block size, or the rest of the file for the last block. */
  private blockLength(k: number): number {
    return k === this.blockCount - 1 ? this.size - k * this.blockSize : this.blockSize;
  }

  /** Read, check and decode block `k` into `into` (its decoded length). */
  private async decodeInto(k: number, into: Uint8Array): Promise<void> {
    const s = this.pool.pop() ?? this.newScratch();
    try {
      const start = this.offsets[k]!;
      const len = this.offsets[k + 1]! - start;
      const n = await this.inner.read(s.win.subarray(0, len), start);
      if (n !== len) throw this.shortRead(k, k + 1, start, len, n);
      const bad = this.decodeBlock(k, s.win, 0, len, into, 0, 0, into.length, s);
      if (bad) await this.recover(k, bad, s.win.subarray(0, len), into, 0, 0, into.length, s);
    } finally {
      if (this.pool.length < POOL_MAX) this.pool.push(s);
    }
  }

  private newScratch(): Scratch {
    return { win: new Uint8Array(Math.max(this.maxStored, 1 << 16)), raw: new Uint8Array(this.blockSize) };
  }

  private shortRead(i: number, j: number, start: number, len: number, n: number): DadiError {
    return new DadiError(
      'EIO',
      `${this.inner.name}: ZFile blocks ${i}..${j - 1}: short read at ${start} (${n} of ${len} bytes)`,
    );
  }

  /**
   * Check and decode block `k`, stored at win[b..e), copying [from, from+count) of it to dst[at..].
   * Every block must decode to exactly its size (block_size, or the rest of the file for the last
   * one). Returns undefined on success, else what went wrong. Hot path: keep allocations minimal.
   */
  private decodeBlock(
    k: number,
    win: Uint8Array,
    b: number,
    e: number,
    dst: Uint8Array,
    at: number,
    from: number,
    count: number,
    s: Scratch,
  ): ZFileCorruptInfo['reason'] | undefined {
    const dataEnd = this.verify ? e - 4 : e;
    const data = win.subarray(b, dataEnd);
    if (this.verify && crc32cRaw(data, ZFILE_BLOCK_CRC_SEED) !== u32(win, dataEnd)) return 'checksum';
    const bs = this.blockSize;
    if (from === 0 && count === bs) {
      // Whole block: decode straight into the caller's buffer.
      const target = at === 0 && dst.length === bs ? dst : dst.subarray(at, at + bs);
      return this.codec.decompress(data, target) === bs ? undefined : 'decode';
    }
    const want = k === this.blockCount - 1 ? this.size - k * bs : bs;
    if (this.codec.decompress(data, s.raw) !== want) return 'decode';
    dst.set(s.raw.subarray(from, from + count), at);
    return undefined;
  }

  /** A block failed: let `onCorrupt` evict it and re-read it (at most 3 times), or throw ECORRUPT. */
  private async recover(
    k: number,
    reason: ZFileCorruptInfo['reason'],
    stored: Uint8Array,
    dst: Uint8Array,
    at: number,
    from: number,
    count: number,
    s: Scratch,
  ): Promise<void> {
    for (let attempt = 0; attempt < MAX_RETRIES && this.opts.onCorrupt; attempt++) {
      const info = { block: k, offset: this.offsets[k]!, length: stored.length, reason };
      if (!(await this.opts.onCorrupt(info))) break;
      await readInto(this.inner, stored, this.offsets[k]!, `ZFile block ${k}`);
      const again = this.decodeBlock(k, stored, 0, stored.length, dst, at, from, count, s);
      if (again === undefined) return;
      reason = again;
    }
    throw this.corrupt(k, reason, stored);
  }

  private corrupt(k: number, reason: ZFileCorruptInfo['reason'], stored: Uint8Array): DadiError {
    const where = `${this.inner.name}: ZFile block ${k} (stored at ${this.offsets[k]}, ${stored.length} bytes)`;
    if (reason === 'checksum') {
      const got = crc32cRaw(stored.subarray(0, stored.length - 4), ZFILE_BLOCK_CRC_SEED);
      return new DadiError(
        'ECORRUPT',
        `${where}: checksum mismatch (stored ${hex(storedCrc(stored))}, got ${hex(got)})`,
      );
    }
    return new DadiError('ECORRUPT', `${where}: does not decode as ${this.algorithm}`);
  }
}

/**
 * ZFile detection (§3.6): false on a short file, bad magic or a missing header flag; ECORRUPT if the
 * digest flag is set and the digest is wrong; true otherwise.
 */
export async function isZFile(file: BlockFile): Promise<boolean> {
  if (file.size < ZFILE_HT_SPACE) return false;
  const h = await readStruct(file, 0, 'header');
  if (!h.ht.magicOk || !hasFlag(h.ht.flags, ZFileFlag.HEADER)) return false;
  checkDigest(file.name, 'header', h);
  return true;
}

export async function readStruct(
  file: BlockFile,
  at: number,
  what: string,
): Promise<{ block: Buffer; ht: ZFileHeader }> {
  if (file.size < at + ZFILE_HT_SPACE) {
    throw new DadiError('EFORMAT', `${file.name}: too small (${file.size} bytes) for a ZFile ${what}`);
  }
  const block = Buffer.allocUnsafe(ZFILE_HT_SPACE);
  await readInto(file, block, at, `ZFile ${what}`);
  return { block, ht: decodeZFileHeader(block) };
}

export function checkDigest(name: string, what: string, s: { block: Buffer; ht: ZFileHeader }): void {
  if (hasFlag(s.ht.flags, ZFileFlag.DIGEST) && !zfileDigestOk(s.block)) {
    throw new DadiError('ECORRUPT', `${name}: ZFile ${what} digest mismatch`);
  }
}

function validateStruct(name: string, ht: ZFileHeader, indexLimit: number): void {
  const bs = ht.blockSize;
  if (bs < 4096 || bs > 65536 || (bs & (bs - 1)) !== 0) {
    throw new DadiError('EFORMAT', `${name}: ZFile block size ${bs} is not a power of two in 4 KiB..64 KiB`);
  }
  const n = ht.indexSize;
  if (n > MAX_ZFILE_INDEX_SIZE) {
    throw new DadiError('EFORMAT', `${name}: ZFile index size ${n} exceeds ${MAX_ZFILE_INDEX_SIZE}`);
  }
  const dataStart = ZFILE_HT_SPACE + ht.dictSize;
  if (ht.indexOffset < dataStart || ht.indexOffset > indexLimit || 4 * n > indexLimit - ht.indexOffset) {
    throw new DadiError(
      'EFORMAT',
      `${name}: ZFile index (${n} entries at ${ht.indexOffset}) does not fit in the file (${indexLimit} bytes available)`,
    );
  }
  // Writers cut the input into ceil(size / block_size) blocks; anything else is corrupt.
  if (Math.ceil(ht.originalFileSize / bs) !== n) {
    throw new DadiError(
      'EFORMAT',
      `${name}: ZFile original size ${ht.originalFileSize} does not match its ${n} blocks of ${bs} bytes`,
    );
  }
}

/** Read the u32 jump table (CRC-checked when the digest flag says so) and build block offsets. */
async function loadJumpTable(file: BlockFile, ht: ZFileHeader): Promise<BlockOffsets> {
  const n = ht.indexSize;
  const bytes = 4 * n;
  const table = jumpTableBuffer(n);
  const pieces: number[] = [];
  for (let p = 0; p < bytes; p += INDEX_PIECE) pieces.push(p);
  for (let i = 0; i < pieces.length; i += INDEX_PARALLEL) {
    await Promise.all(
      pieces.slice(i, i + INDEX_PARALLEL).map((p) => {
        const len = Math.min(INDEX_PIECE, bytes - p);
        return readInto(file, table.subarray(p, p + len), ht.indexOffset + p, 'ZFile index');
      }),
    );
  }
  if (hasFlag(ht.flags, ZFileFlag.DIGEST)) {
    const crc = crc32cRaw(table);
    if (crc !== ht.indexCrc) {
      throw new DadiError(
        'ECORRUPT',
        `${file.name}: ZFile index checksum mismatch (stored ${hex(ht.indexCrc)}, got ${hex(crc)})`,
      );
    }
  }
  const minLen = ht.verify !== 0 ? 4 : 0;
  const dataStart = ZFILE_HT_SPACE + ht.dictSize;
  const out = blockOffsets(file.name, table, n, dataStart, minLen, storedLimit(ht.blockSize));
  const end = out.offsets[n]!;
  if (end > ht.indexOffset) {
    throw new DadiError('EFORMAT', `${file.name}: ZFile blocks end at ${end}, past the index at ${ht.indexOffset}`);
  }
  return out;
}

/**
 * The trailer struct, read as the header is (a ZFile in trailer mode needs both before its jump
 * table); undefined when the file cannot hold header and trailer. A failure surfaces only where
 * the trailer is awaited (it is unused in header-overwrite mode and for files that are no ZFile).
 */
function speculativeTrailer(file: BlockFile): Promise<{ block: Buffer; ht: ZFileHeader }> | undefined {
  if (file.size < 2 * ZFILE_HT_SPACE) return undefined;
  const p = readStruct(file, file.size - ZFILE_HT_SPACE, 'trailer');
  p.catch(() => {});
  return p;
}

/** Little-endian u32 at b[at..at+4). */
function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function storedCrc(stored: Uint8Array): number {
  return u32(stored, stored.length - 4);
}

function crcOk(stored: Uint8Array): boolean {
  return crc32cRaw(stored.subarray(0, stored.length - 4), ZFILE_BLOCK_CRC_SEED) === storedCrc(stored);
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}
