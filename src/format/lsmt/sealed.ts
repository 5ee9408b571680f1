// A sealed (read-only) LSMT layer as a BlockFile of its virtual disk: committed layers and
// close-sealed RW data files (spec §2.5a/b, §2.6, §2.7). Not for stacks (stack.ts) or for
// unwrapping ZFile/tar (the caller passes the raw LSMT byte stream).

import type { BlockFile, ExtentSource } from '../../blockfile/blockfile.js';
import { checkRead, readExact } from '../../blockfile/range.js';
import type { Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { type CommitOptions, type CommitResult, commitLayer } from './commit.js';
import { DATA_START_SECTOR, HT_SPACE, MAX_RO_INDEX_SIZE, SECTOR } from './constants.js';
import { checkVirtualSize, decodeHeader, isDataFile, isHeader, isSealed, type LsmtHeader } from './header.js';
import { indexedExtents, readIndexed } from './read.js';
import { SEGMENT_BYTES } from './segment.js';
import { SegmentIndex } from './segment-index.js';
import { uuidOrNull } from './uuid.js';

export class SealedLayer implements BlockFile, ExtentSource {
  private closed = false;
  /** The layer's one source file (tag 0), as stacks index theirs. */
  readonly files: BlockFile[];

  private constructor(
    /** The raw LSMT byte stream (data reads go here). */
    readonly file: BlockFile,
    /** The header at offset 0 (flags 0x7 committed, 0x3 close-sealed). */
    readonly header: LsmtHeader,
    /** The trailer: index location, uuid, virtual size. */
    readonly trailer: LsmtHeader,
    /** The mappings (padding dropped, tags 0). */
    readonly index: SegmentIndex,
  ) {
    this.files = [file];
  }

  /**
   * Open and validate a sealed layer (spec §2.6): magics and flags of header and trailer,
   * index_size ≤ 1,000,000 (checked before reading the index), index within the file, mappings
   * ordered and non-overlapping, moffsets within the data area. Errors are DadiError
   * EFORMAT / ERANGE naming the file.
   *
   * @example const layer = await SealedLayer.open(await LocalFile.open('l1.lsmt'));
   */
  static async open(file: BlockFile): Promise<SealedLayer> {
    const name = file.name;
    if (file.size < 2 * HT_SPACE) {
      throw new DadiError(
        'EFORMAT',
        `${name}: not an LSMT layer: ${file.size} bytes is too small for header and trailer`,
      );
    }
    // Header and trailer read together: through a ZFile each is a block to fetch and decode.
    const trailerOffset = file.size - HT_SPACE;
    const [headBytes, tailBytes] = await Promise.all([
      readExact(file, 0, HT_SPACE, 'lsmt header'),
      readExact(file, trailerOffset, HT_SPACE, 'lsmt trailer'),
    ]);
    const header = decodeHeader(headBytes, `${name}: lsmt header`);
    if (!isHeader(header)) throw new DadiError('EFORMAT', `${name}: lsmt header: header flag not set`);
    if (!isDataFile(header))
      throw new DadiError('EFORMAT', `${name}: lsmt header: not a data file (an RW index file?)`);
    const trailer = decodeHeader(
      tailBytes,
      `${name}: lsmt trailer (no trailer: an unsealed RW data file or a truncated layer)`,
    );
    if (isHeader(trailer)) throw new DadiError('EFORMAT', `${name}: lsmt trailer: flags say header`);
    if (!isDataFile(trailer)) throw new DadiError('EFORMAT', `${name}: lsmt trailer: not a data file`);
    if (!isSealed(trailer)) throw new DadiError('EFORMAT', `${name}: lsmt trailer: not sealed`);
    const { indexOffset, indexSize } = trailer;
    if (indexSize > MAX_RO_INDEX_SIZE) {
      throw new DadiError(
        'ERANGE',
        `${name}: lsmt trailer: index_size ${indexSize} exceeds ${MAX_RO_INDEX_SIZE} entries`,
      );
    }
    if (indexOffset > trailerOffset || indexSize * SEGMENT_BYTES > trailerOffset - indexOffset) {
      throw new DadiError(
        'ERANGE',
        `${name}: lsmt trailer: index (${indexSize} entries at ${indexOffset}) does not fit before the trailer at ${trailerOffset}`,
      );
    }
    const raw = await readExact(file, indexOffset, indexSize * SEGMENT_BYTES, 'lsmt index');
    const index = SegmentIndex.decode(raw, indexSize);
    validateIndex(index, name, DATA_START_SECTOR, Math.floor(indexOffset / SECTOR));
    checkVirtualSize(`${name}: lsmt trailer`, trailer.virtualSize);
    const n = index.length;
    const mappedEnd = n > 0 ? (index.offsets[n - 1]! + index.lengths[n - 1]!) * SECTOR : 0;
    if (mappedEnd > trailer.virtualSize) {
      throw new DadiError(
        'EFORMAT',
        `${name}: lsmt trailer: virtual size ${trailer.virtualSize} is smaller than what the index maps (up to byte ${mappedEnd})`,
      );
    }
    return new SealedLayer(file, header, trailer, index);
  }

  get name(): string {
    return this.file.name;
  }

  /** Virtual disk size in bytes (the trailer's virtual_size). */
  get size(): number {
    return this.trailer.virtualSize;
  }

  get virtualSize(): number {
    return this.trailer.virtualSize;
  }

  /** The layer's uuid (trailer), upper case; the null uuid if unset. */
  get uuid(): string {
    return uuidOrNull(this.trailer.uuid);
  }

  get parentUuid(): string {
    return uuidOrNull(this.trailer.parentUuid);
  }

  /** The commit message (UTF-8). */
  get userTag(): string {
    return new TextDecoder().decode(this.trailer.userTag);
  }

  get segmentCount(): number {
    return this.index.length;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    return readIndexed(this, buf, offset);
  }

  extents(offset: number, length: number): AsyncIterable<{ offset: number; length: number }> {
    return indexedExtents(this, offset, length);
  }

  /** Compact this layer alone into `sink` (`overlaybd-commit --commit_sealed`). */
  commit(sink: Sink, opts: CommitOptions = {}): Promise<CommitResult> {
    return commitLayer(this.index, this.files, sink, opts);
  }

  /** A JSON-friendly summary for `inspect`. */
  describe(): Record<string, unknown> {
    const h = this.header;
    const t = this.trailer;
    let zeroed = 0;
    for (let i = 0; i < this.index.length; i++) zeroed += this.index.zeroed[i]!;
    return {
      headerFlags: `0x${h.flags.toString(16)}`,
      trailerFlags: `0x${t.flags.toString(16)}`,
      kind: h.flags & 0x4 ? 'committed' : 'close-sealed',
      version: `${t.version}.${t.subVersion}`,
      virtualSize: t.virtualSize,
      uuid: this.uuid,
      parentUuid: this.parentUuid,
      userTag: this.userTag,
      indexOffset: t.indexOffset,
      indexSize: t.indexSize,
      segments: this.index.length,
      padding: t.indexSize - this.index.length,
      zeroedSegments: zeroed,
      dataBytes: this.index.dataSectors() * SECTOR,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }
}

/**
 * Check what the reference checks when it loads a sealed index (spec §2.6 step 5): strictly
 * ordered, non-overlapping; data mappings within [begin, end) sectors, zeroed ones' moffset in
 * [begin, end].
 */
export function validateIndex(index: SegmentIndex, name: string, begin: number, end: number): void {
  const { offsets, lengths, moffsets, zeroed } = index;
  for (let i = 0; i < index.length; i++) {
    const off = offsets[i]!;
    const m = moffsets[i]!;
    if (i > 0 && offsets[i - 1]! + lengths[i - 1]! > off) {
      throw new DadiError(
        'EFORMAT',
        `${name}: lsmt index: entry ${i} (offset ${off}) overlaps or precedes entry ${i - 1} (offset ${offsets[i - 1]}, length ${lengths[i - 1]})`,
      );
    }
    if (zeroed[i] === 1) {
      if (m < begin || m > end) {
        throw new DadiError(
          'ERANGE',
          `${name}: lsmt index: zeroed entry ${i} has moffset ${m} outside [${begin}, ${end}]`,
        );
      }
    } else if (m < begin || m >= end || m + lengths[i]! > end) {
      throw new DadiError(
        'ERANGE',
        `${name}: lsmt index: entry ${i} maps sectors [${m}, ${m + lengths[i]!}) outside the data area [${begin}, ${end})`,
      );
    }
  }
}
