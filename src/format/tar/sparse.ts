// GNU sparse tar members: the map of data regions, in each of the forms GNU tar writes —
// old GNU ('S' typeflag: regions in the header and extension blocks), PAX 0.0 (repeated
// GNU.sparse.offset/numbytes records), PAX 0.1 (GNU.sparse.map) and PAX 1.0 (the map as decimal
// lines at the start of the member's data). Every map is bounded before it is stored and checked
// against the member's sizes. The member's stored bytes are its regions' bytes back to back.
//
// Old GNU header (after the ustar fields up to devminor):
//   offset 386  sparse[4]   { offset[12] octal, numbytes[12] octal }
//   offset 482  isextended  1 byte: an extension block follows
//   offset 483  realsize    [12] octal: the file's size
// Extension block: sparse[21] at 0 (same entries), isextended at 504.

import { DadiError } from '../../errors.js';
import { type PaxRecords, parseTarNumber, paxNumber, paxText } from './header.js';

/** One run of data in a sparse file; what lies between runs is a hole. */
export interface SparseRegion {
  offset: number;
  length: number;
}

/** Largest map accepted (a file this fragmented is better stored whole). */
export const MAX_SPARSE_REGIONS = 1 << 18;

const ENTRY = 24;
const GNU_HEADER_SPARSE = { first: 386, count: 4, isExtended: 482, realSize: 483 } as const;
const GNU_EXTENSION_SPARSE = { first: 0, count: 21, isExtended: 504 } as const;

function gnuEntries(block: Uint8Array, first: number, count: number, out: SparseRegion[]): void {
  for (let i = 0; i < count; i++) {
    const o = first + i * ENTRY;
    if (block[o] === 0) break;
    const offset = parseTarNumber(block.subarray(o, o + 12), true);
    const length = parseTarNumber(block.subarray(o + 12, o + 24), true);
    if (offset === undefined || length === undefined) throw new DadiError('EFORMAT', 'bad old GNU sparse map entry');
    push(out, offset, length);
  }
}

function push(out: SparseRegion[], offset: number, length: number): void {
  if (out.length >= MAX_SPARSE_REGIONS)
    throw new DadiError('ERANGE', `sparse map has more than ${MAX_SPARSE_REGIONS} regions`);
  out.push({ offset, length });
}

/** The regions in an old GNU sparse header, whether an extension block follows, and the real size. */
export function gnuSparseHeader(block: Uint8Array): Required<Omit<SparseInfo, 'name'>> & { extended: boolean } {
  const s = GNU_HEADER_SPARSE;
  const regions: SparseRegion[] = [];
  gnuEntries(block, s.first, s.count, regions);
  const realSize = parseTarNumber(block.subarray(s.realSize, s.realSize + 12), true);
  if (realSize === undefined) throw new DadiError('EFORMAT', 'bad old GNU sparse real size');
  return { regions, extended: block[s.isExtended] !== 0, realSize };
}

/** Add the regions of an old GNU sparse extension block; true when another one follows. */
export function gnuSparseExtension(block: Uint8Array, regions: SparseRegion[]): boolean {
  const s = GNU_EXTENSION_SPARSE;
  gnuEntries(block, s.first, s.count, regions);
  return block[s.isExtended] !== 0;
}

/** What a member's header says of its sparseness. */
export interface SparseInfo {
  /** The file's size, holes included. */
  realSize: number;
  /** The real path (PAX 0.1/1.0 put a made-up one in the header). */
  name?: Uint8Array;
  /** The map; undefined for PAX 1.0, whose map starts the data (read it with SparseMapReader). */
  regions?: SparseRegion[];
}

/**
 * The sparse description in a member's PAX records (`list`: the member's records in order, for
 * 0.0's repeated keys); undefined for an ordinary member. EFORMAT/ERANGE when malformed.
 */
export function paxSparse(records: PaxRecords, list: readonly [string, Uint8Array][]): SparseInfo | undefined {
  const name = records.get('GNU.sparse.name');
  const major = paxText(records, 'GNU.sparse.major');
  if (major !== undefined) {
    const minor = paxText(records, 'GNU.sparse.minor');
    if (major !== '1' || minor !== '0')
      throw new DadiError('EUNSUPPORTED', `GNU sparse format ${major}.${minor ?? '?'} not supported`);
    const realSize = paxNumber(records, 'GNU.sparse.realsize');
    if (realSize === undefined) throw new DadiError('EFORMAT', 'GNU sparse 1.0 member without GNU.sparse.realsize');
    return { realSize, ...(name ? { name } : {}) };
  }
  const realSize = paxNumber(records, 'GNU.sparse.size') ?? paxNumber(records, 'GNU.sparse.realsize');
  const map = paxText(records, 'GNU.sparse.map');
  const regions: SparseRegion[] = [];
  if (map !== undefined) {
    const nums = map === '' ? [] : map.split(',');
    if (nums.length % 2 !== 0 || nums.length / 2 > MAX_SPARSE_REGIONS)
      throw new DadiError(nums.length % 2 ? 'EFORMAT' : 'ERANGE', `GNU.sparse.map has ${nums.length} numbers`);
    for (let i = 0; i < nums.length; i += 2) push(regions, decimal(nums[i]!), decimal(nums[i + 1]!));
  } else {
    let offset: number | undefined;
    for (const [k, v] of list) {
      if (k === 'GNU.sparse.offset') {
        if (offset !== undefined) throw new DadiError('EFORMAT', 'GNU.sparse.offset without its GNU.sparse.numbytes');
        offset = decimal(Buffer.from(v).toString('latin1'));
      } else if (k === 'GNU.sparse.numbytes') {
        if (offset === undefined) throw new DadiError('EFORMAT', 'GNU.sparse.numbytes without its GNU.sparse.offset');
        push(regions, offset, decimal(Buffer.from(v).toString('latin1')));
        offset = undefined;
      }
    }
    if (offset !== undefined) throw new DadiError('EFORMAT', 'GNU.sparse.offset without its GNU.sparse.numbytes');
    if (regions.length === 0 && realSize === undefined) return undefined;
  }
  if (realSize === undefined) throw new DadiError('EFORMAT', 'GNU sparse member without GNU.sparse.size');
  const numBlocks = paxNumber(records, 'GNU.sparse.numblocks');
  if (numBlocks !== undefined && numBlocks !== regions.length)
    throw new DadiError('EFORMAT', `GNU.sparse.numblocks ${numBlocks} but ${regions.length} regions in the map`);
  return { realSize, ...(name ? { name } : {}), regions };
}

function decimal(s: string): number {
  if (!/^\d{1,16}$/.test(s) || !Number.isSafeInteger(Number(s)))
    throw new DadiError('EFORMAT', `bad number ${JSON.stringify(s.slice(0, 40))} in sparse map`);
  return Number(s);
}

/**
 * The PAX 1.0 map at the start of a member's data, fed one 512-byte block at a time: a count,
 * then offset and length per region, each a decimal line; the map ends at a block boundary.
 */
export class SparseMapReader {
  private readonly nums: number[] = [];
  private want: number | undefined;
  private line = '';
  readonly regions: SparseRegion[] = [];
  /** Bytes of map consumed (whole blocks). */
  bytes = 0;

  /** Take the next block; true once the map is complete. */
  feed(block: Uint8Array): boolean {
    this.bytes += block.length;
    for (const c of block) {
      if (this.want !== undefined && this.nums.length === this.want) break;
      if (c !== 0x0a) {
        if (this.line.length >= 20) throw new DadiError('EFORMAT', 'sparse map line too long');
        this.line += String.fromCharCode(c);
        continue;
      }
      const n = decimal(this.line);
      this.line = '';
      if (this.want === undefined) {
        if (n > MAX_SPARSE_REGIONS)
          throw new DadiError('ERANGE', `sparse map of ${n} regions (more than ${MAX_SPARSE_REGIONS})`);
        this.want = 2 * n;
      } else this.nums.push(n);
    }
    if (this.want === undefined || this.nums.length < this.want) return false;
    for (let i = 0; i < this.nums.length; i += 2) push(this.regions, this.nums[i]!, this.nums[i + 1]!);
    return true;
  }
}

/**
 * Check a map against the file's real size and the bytes stored for it: regions in order, not
 * overlapping, inside the file, lengths adding up to the stored bytes. Zero-length regions (GNU
 * tar ends each map with one at the real size) are dropped.
 */
export function checkSparseMap(regions: SparseRegion[], realSize: number, stored: number): SparseRegion[] {
  let end = 0;
  let sum = 0;
  const out: SparseRegion[] = [];
  for (const r of regions) {
    if (r.offset < end) throw new DadiError('EFORMAT', `sparse map region at ${r.offset} overlaps or is out of order`);
    if (r.offset + r.length > realSize)
      throw new DadiError('EFORMAT', `sparse map region ${r.offset}+${r.length} past the file's size ${realSize}`);
    end = r.offset + r.length;
    sum += r.length;
    if (r.length > 0) out.push(r);
  }
  if (sum !== stored) throw new DadiError('EFORMAT', `sparse map covers ${sum} bytes but ${stored} are stored`);
  return out;
}
