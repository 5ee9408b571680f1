// Commit (compaction, spec §2.11): stream a sorted mapping array and the data it points to as one
// committed LSMT layer into a Sink, byte-identical to overlaybd-commit / overlaybd-merge.
// Not the sink: ZFile compression and tar wrapping are sinks stacked by the caller.

import type { BlockFile } from '../../blockfile/blockfile.js';
import { readExact, readInto } from '../../blockfile/range.js';
import { type BlockSink, type CompressedBlocks, isBlockSink, type Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import {
  COMMIT_STEP_SECTORS,
  DATA_START_SECTOR,
  HT_SPACE,
  INDEX_PAD_ENTRIES,
  MAX_RO_INDEX_SIZE,
  MAX_SEGMENT_LENGTH,
  SECTOR,
} from './constants.js';
import { decodeHeader, encodeHeader, Flags, userTagBytes } from './header.js';
import { encodeInvalid, encodeSegment, SEGMENT_BYTES, type Segment } from './segment.js';
import { type SegmentIndex, SegmentListBuilder } from './segment-index.js';
import { NULL_UUID, normalizeUuid, uuidOrNull } from './uuid.js';

export interface CommitOptions {
  /** uuid of the new layer (any case). Default: the null uuid. */
  uuid?: string;
  /** Overrides the parent uuid taken from the sources' headers. */
  parentUuid?: string;
  /** Commit message, at most 256 bytes (UTF-8 for strings). */
  userTag?: string | Uint8Array;
  /** Overrides the virtual size taken from the first source's header. */
  virtualSize?: number;
  /** Call `sink.end()` when done (default true). */
  endSink?: boolean;
  /**
   * Blocks of `sources[tag]` compressed ahead: where a block of the output is one of them and the
   * sink stores blocks in their format, the sink takes the stored bytes instead of the data.
   */
  precompressed?: { tag: number; blocks: CompressedBlocks };
}

export interface CommitResult {
  /** Bytes written to the sink. */
  size: number;
  /** Data bytes copied (between header and index). */
  dataBytes: number;
  /** Byte offset of the index (= 4096 + dataBytes). */
  indexOffset: number;
  /** Index entries after coalescing, before padding. */
  entries: number;
  /** index_size written to the trailer (padding included). */
  indexSize: number;
  uuid: string;
  parentUuid: string;
  virtualSize: number;
}

const STAGE_BYTES = 4 * 1024 * 1024;

/**
 * Compact `mappings` (sorted, non-overlapping; tags index `sources`) into `sink`:
 * header (0x7), data copied in 32 KiB steps, coalesced index padded to 256 entries, trailer (0x6).
 * Layer info follows the reference: virtual size from the first source's header; parent uuid
 * from it when there is one source, else from the last source's header (sources are top first);
 * the uuid is null unless given. Calls `sink.end()` at the end unless `endSink: false`.
 *
 * @example
 * await commitLayer(rw.index.toSegmentIndex(0), [rw.dataFile], await FileSink.create('out.lsmt'), { uuid });
 */
export async function commitLayer(
  mappings: SegmentIndex,
  sources: readonly BlockFile[],
  sink: Sink,
  opts: CommitOptions = {},
): Promise<CommitResult> {
  if (sources.length === 0) throw new DadiError('EINVAL', 'lsmt commit: no source files');
  const first = decodeHeader(await readExact(sources[0]!, 0, HT_SPACE, 'lsmt header'), sources[0]!.name);
  let parent = first.parentUuid;
  if (sources.length > 1) {
    const last = sources[sources.length - 1]!;
    parent = decodeHeader(await readExact(last, 0, HT_SPACE, 'lsmt header'), last.name).parentUuid;
  }
  const info = {
    virtualSize: opts.virtualSize ?? first.virtualSize,
    uuid: opts.uuid !== undefined ? normalizeUuid(opts.uuid, 'commit uuid') : NULL_UUID,
    parentUuid:
      opts.parentUuid !== undefined ? normalizeUuid(opts.parentUuid, 'commit parent uuid') : uuidOrNull(parent),
    userTag: userTagBytes(opts.userTag),
  };
  const start = sink.position;
  // Blocks compressed ahead count only when the sink stores blocks alike and from its start.
  let pre = opts.precompressed;
  if (pre && !(isBlockSink(sink) && sink.blockFormat === pre.blocks.format && start % sink.blockSize === 0)) {
    pre = undefined;
  }
  await pre?.blocks.settle();
  await sink.write(encodeHeader({ flags: Flags.committedHeader, ...info }));

  // Emitted entries, coalesced on the fly (the reference's compress_raw_index, greedily).
  const out = new Coalescer(Math.max(16, mappings.length));
  const emit = out.push.bind(out);

  // Data copy through two staging buffers: one fills (concurrent reads) while the other is written.
  let stage = new Uint8Array(STAGE_BYTES);
  let spare = new Uint8Array(STAGE_BYTES);
  let fill = 0;
  let reads: Promise<void>[] = [];
  let writing: Promise<void> | undefined;
  const flushStage = async () => {
    await Promise.all(reads);
    reads = [];
    if (writing) await writing;
    writing = fill > 0 ? sink.write(stage.subarray(0, fill)) : undefined;
    writing?.catch(() => {}); // awaited later; this only keeps an early failure from being 'unhandled'
    [stage, spare] = [spare, stage];
    fill = 0;
  };

  let cursor = DATA_START_SECTOR;
  for (let i = 0; i < mappings.length; i++) {
    const off = mappings.offsets[i]!;
    const len = mappings.lengths[i]!;
    const tag = mappings.tags[i]!;
    if (mappings.zeroed[i] === 1) {
      emit(off, len, cursor, true, tag);
      continue;
    }
    const src = sources[tag];
    if (src === undefined)
      throw new DadiError('EFORMAT', `lsmt commit: mapping refers to layer ${tag}, which does not exist`);
    for (let done = 0; done < len; done += COMMIT_STEP_SECTORS) {
      emit(off + done, Math.min(COMMIT_STEP_SECTORS, len - done), cursor + done, false, tag);
    }
    let pos = mappings.moffsets[i]! * SECTOR;
    let left = len * SECTOR;
    const blocks = pre && tag === pre.tag ? pre.blocks : undefined;
    while (left > 0) {
      if (blocks) {
        // Output offset (from the sink's start) of the next byte: the header, then the data.
        const at = (cursor + len) * SECTOR - left;
        const run =
          at % blocks.blockSize === 0
            ? blocks.heldRun(pos, Math.min(STORED_RUN, Math.floor(left / blocks.blockSize)))
            : 0;
        if (run > 0) {
          await flushStage();
          if (writing) await writing;
          writing = undefined;
          await (sink as BlockSink).writeStored(await blocks.readStored(pos, run));
          pos += run * blocks.blockSize;
          left -= run * blocks.blockSize;
          continue;
        }
      }
      if (fill === STAGE_BYTES) await flushStage();
      const n = Math.min(STAGE_BYTES - fill, blocks ? rawRun(blocks, (cursor + len) * SECTOR - left, pos, left) : left);
      const r = readInto(src, stage.subarray(fill, fill + n), pos, 'lsmt commit: mapped data');
      r.catch(() => {}); // awaited by flushStage
      reads.push(r);
      fill += n;
      pos += n;
      left -= n;
    }
    cursor += len;
  }
  await flushStage();
  if (writing) await writing;
  const index = out.finish();
  const entries = index.length;
  const indexSize = Math.ceil(entries / INDEX_PAD_ENTRIES) * INDEX_PAD_ENTRIES;
  if (indexSize > MAX_RO_INDEX_SIZE) {
    throw new DadiError(
      'ERANGE',
      `lsmt commit: the index would have ${indexSize} entries; readers reject more than ${MAX_RO_INDEX_SIZE}`,
    );
  }
  const bytes = new Uint8Array(indexSize * SEGMENT_BYTES);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < indexSize; i++) {
    const p = i * SEGMENT_BYTES;
    if (i < entries) {
      encodeSegment(
        view,
        p,
        index.offsets[i]!,
        index.lengths[i]!,
        index.moffsets[i]!,
        index.zeroed[i] === 1,
        index.tags[i]!,
      );
    } else {
      encodeInvalid(view, p);
    }
  }
  const indexOffset = cursor * SECTOR;
  await sink.write(bytes);
  await sink.write(encodeHeader({ flags: Flags.sealedTrailer, indexOffset, indexSize, ...info }));
  const size = sink.position - start;
  if (opts.endSink !== false) await sink.end();
  return {
    size,
    dataBytes: indexOffset - HT_SPACE,
    indexOffset,
    entries,
    indexSize,
    uuid: info.uuid,
    parentUuid: info.parentUuid,
    virtualSize: info.virtualSize,
  };
}

/** Stored blocks queued per writeStored call at most. */
const STORED_RUN = 256;

/** Bytes from output offset `at` to copy raw: up to the next block held compressed. */
function rawRun(blocks: CompressedBlocks, at: number, pos: number, left: number): number {
  const bs = blocks.blockSize;
  if ((pos - at) % bs !== 0) return left; // the mapping's data lies across output blocks: all raw
  let n = at % bs === 0 ? bs : bs - (at % bs); // at least up to the next boundary
  while (n + bs <= left && blocks.heldRun(pos + n, 1) === 0) n += bs;
  return Math.min(n, left);
}

/**
 * Greedy coalescing of a mapping list (the reference's compress_raw_index): an entry joins the
 * current run when it continues it logically and physically, has the same zeroed flag and tag,
 * and the summed length stays < 16383 sectors.
 */
export class Coalescer {
  private readonly out: SegmentListBuilder;
  private rOff = 0;
  private rLen = 0;
  private rMoff = 0;
  private rZero = false;
  private rTag = 0;
  private has = false;

  constructor(capacity = 64) {
    this.out = new SegmentListBuilder(capacity);
  }

  push(off: number, len: number, moff: number, zero: boolean, tag: number): void {
    if (
      this.has &&
      this.rOff + this.rLen === off &&
      (this.rZero ? this.rMoff : this.rMoff + this.rLen) === moff &&
      this.rZero === zero &&
      this.rTag === tag &&
      this.rLen + len < MAX_SEGMENT_LENGTH
    ) {
      this.rLen += len;
      return;
    }
    if (this.has) this.out.push(this.rOff, this.rLen, this.rMoff, this.rZero, this.rTag);
    this.rOff = off;
    this.rLen = len;
    this.rMoff = moff;
    this.rZero = zero;
    this.rTag = tag;
    this.has = true;
  }

  finish(): SegmentIndex {
    if (this.has) this.out.push(this.rOff, this.rLen, this.rMoff, this.rZero, this.rTag);
    this.has = false;
    return this.out.build();
  }
}

/** Coalesce a sorted mapping list with the commit rule (see Coalescer). */
export function coalesceSegments(segs: Iterable<Segment>): Segment[] {
  const c = new Coalescer();
  for (const s of segs) c.push(s.offset, s.length, s.moffset, s.zeroed, s.tag);
  return c.finish().toArray();
}
