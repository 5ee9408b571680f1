// The read path shared by every LSMT device (sealed layer, stack, writable layer, combo): walk the
// mappings of a byte range, read data from files[tag], zero-fill zeroed mappings and holes (or let
// the caller fill holes from a lower device). Also the extent walk for ExtentSource.
// Not an index: the caller passes a lookup function.

import type { BlockFile } from '../../blockfile/blockfile.js';
import { prefetchRange } from '../../blockfile/prefetch.js';
import { DadiError } from '../../errors.js';
import { MAX_IO_SIZE, SECTOR } from './constants.js';
import type { Segment } from './segment.js';

/** The mappings intersecting the sector range [b, e), in order, trimmed to it. */
export type SegmentLookup = (b: number, e: number) => Segment[];

/** Fill a hole: `dst` covers device bytes [byteOffset, byteOffset + dst.length). */
export type HoleFiller = (dst: Uint8Array, byteOffset: number) => Promise<void>;

/**
 * Fill `buf` with device bytes [offset, offset + buf.length). Any byte offset and size work (the
 * reference requires 512-byte alignment; we are more lenient on reads). Processed in 4 MiB pieces;
 * physically contiguous mappings are read with one call; reads within a piece run concurrently.
 */
export async function readMapped(
  buf: Uint8Array,
  offset: number,
  lookup: SegmentLookup,
  files: readonly BlockFile[],
  fillHole?: HoleFiller,
): Promise<void> {
  for (let p = 0; p < buf.length; p += MAX_IO_SIZE) {
    const start = offset + p;
    const end = start + Math.min(MAX_IO_SIZE, buf.length - p);
    const jobs: Promise<void>[] = [];
    const hole = (a: number, b: number) => {
      const dst = buf.subarray(a - offset, b - offset);
      if (fillHole) jobs.push(fillHole(dst, a));
      else dst.fill(0);
    };
    let rTag = -1;
    let rFile = 0;
    let rBuf = 0;
    let rLen = 0;
    const flush = () => {
      if (rLen > 0) jobs.push(readOrZero(files, rTag, buf.subarray(rBuf, rBuf + rLen), rFile));
      rLen = 0;
    };
    let cursor = start;
    for (const s of lookup(Math.floor(start / SECTOR), Math.ceil(end / SECTOR))) {
      const segStart = s.offset * SECTOR;
      const s0 = Math.max(segStart, start);
      const s1 = Math.min(segStart + s.length * SECTOR, end);
      if (s1 <= s0) continue;
      if (s0 > cursor) hole(cursor, s0);
      if (s.zeroed) {
        buf.fill(0, s0 - offset, s1 - offset);
      } else {
        const fpos = s.moffset * SECTOR + (s0 - segStart);
        if (rLen > 0 && rTag === s.tag && rFile + rLen === fpos && rBuf + rLen === s0 - offset) {
          rLen += s1 - s0;
        } else {
          flush();
          rTag = s.tag;
          rFile = fpos;
          rBuf = s0 - offset;
          rLen = s1 - s0;
        }
      }
      cursor = s1;
    }
    if (cursor < end) hole(cursor, end);
    flush();
    await Promise.all(jobs);
  }
}

/** Read from files[tag]; a short read (end of file) is zero-filled, as the reference does. */
async function readOrZero(files: readonly BlockFile[], tag: number, dst: Uint8Array, pos: number): Promise<void> {
  const f = files[tag];
  if (f === undefined) throw new DadiError('EFORMAT', `lsmt: mapping refers to layer ${tag}, which does not exist`);
  const n = await f.read(dst, pos);
  if (n < dst.length) dst.fill(0, n);
}

/**
 * Prefetch device bytes [offset, offset + length) (see PrefetchableBlockFile): each mapped,
 * non-zeroed piece from files[tag], physically contiguous pieces as one range; holes and zeroed
 * mappings need nothing.
 */
export async function prefetchMapped(
  offset: number,
  length: number,
  lookup: SegmentLookup,
  files: readonly BlockFile[],
): Promise<void> {
  const jobs: Promise<void>[] = [];
  let run: { tag: number; pos: number; length: number } | undefined;
  const flush = () => {
    if (!run) return;
    const f = files[run.tag];
    if (f === undefined)
      throw new DadiError('EFORMAT', `lsmt: mapping refers to layer ${run.tag}, which does not exist`);
    jobs.push(prefetchRange(f, run.pos, run.length));
    run = undefined;
  };
  const end = offset + length;
  for (const s of lookup(Math.floor(offset / SECTOR), Math.ceil(end / SECTOR))) {
    const segStart = s.offset * SECTOR;
    const s0 = Math.max(segStart, offset);
    const s1 = Math.min(segStart + s.length * SECTOR, end);
    if (s1 <= s0 || s.zeroed) continue;
    const pos = s.moffset * SECTOR + (s0 - segStart);
    if (run && run.tag === s.tag && run.pos + run.length === pos) run.length += s1 - s0;
    else {
      flush();
      run = { tag: s.tag, pos, length: s1 - s0 };
    }
  }
  flush();
  await Promise.all(jobs);
}

const EXTENT_WINDOW_SECTORS = 2 ** 21; // 1 GiB per lookup

/**
 * The byte ranges of non-zeroed mappings within [offset, offset + length), clipped and with
 * logically adjacent ranges coalesced.
 */
export async function* mappedExtents(
  lookup: SegmentLookup,
  offset: number,
  length: number,
): AsyncGenerator<{ offset: number; length: number }> {
  const end = offset + length;
  let pStart = 0;
  let pEnd = -1;
  for (let wb = Math.floor(offset / SECTOR); wb * SECTOR < end; wb += EXTENT_WINDOW_SECTORS) {
    const we = Math.min(wb + EXTENT_WINDOW_SECTORS, Math.ceil(end / SECTOR));
    for (const s of lookup(wb, we)) {
      if (s.zeroed) continue;
      const a = Math.max(s.offset * SECTOR, offset);
      const b = Math.min((s.offset + s.length) * SECTOR, end);
      if (b <= a) continue;
      if (a === pEnd) {
        pEnd = b;
        continue;
      }
      if (pEnd > pStart) yield { offset: pStart, length: pEnd - pStart };
      pStart = a;
      pEnd = b;
    }
  }
  if (pEnd > pStart) yield { offset: pStart, length: pEnd - pStart };
}

/** Throw EINVAL unless `offset` and `length` are non-negative safe integers. */
export function checkRange(name: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new DadiError('EINVAL', `${name}: bad range ${offset}+${length}`);
  }
}

/** Throw EINVAL unless `offset` and `length` are multiples of 512 (writes and discards). */
export function checkAligned(name: string, offset: number, length: number): void {
  checkRange(name, offset, length);
  if (offset % SECTOR !== 0 || length % SECTOR !== 0) {
    throw new DadiError('EINVAL', `${name}: offset ${offset} and length ${length} must be multiples of 512`);
  }
}

/** What sealed layers and stacks share: a sorted index over files by tag, and a size. */
export interface IndexedDevice {
  readonly name: string;
  readonly size: number;
  readonly index: { overlapping: SegmentLookup };
  readonly files: readonly BlockFile[];
}

/** `read()` of an indexed device: clamp to its size, then read through the index. */
export async function readIndexed(dev: IndexedDevice, buf: Uint8Array, offset: number): Promise<number> {
  checkRange(dev.name, offset, buf.length);
  const n = Math.max(0, Math.min(buf.length, dev.size - offset));
  if (n > 0) await readMapped(buf.subarray(0, n), offset, (b, e) => dev.index.overlapping(b, e), dev.files);
  return n;
}

/** `prefetch()` of an indexed device: clamp to its size, then prefetch through the index. */
export async function prefetchIndexed(dev: IndexedDevice, offset: number, length: number): Promise<void> {
  checkRange(dev.name, offset, length);
  const n = Math.max(0, Math.min(length, dev.size - offset));
  if (n > 0) await prefetchMapped(offset, n, (b, e) => dev.index.overlapping(b, e), dev.files);
}

/** `extents()` of an indexed device: non-zeroed mapped byte ranges within its size. */
export function indexedExtents(
  dev: IndexedDevice,
  offset: number,
  length: number,
): AsyncIterable<{ offset: number; length: number }> {
  const end = Math.min(offset + length, dev.size);
  return mappedExtents((b, e) => dev.index.overlapping(b, e), offset, Math.max(0, end - offset));
}
