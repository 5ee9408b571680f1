// The immutable, sorted, non-overlapping mapping array of a sealed layer or a merged stack, held in
// typed arrays, with a fast "first mapping whose end > x" search. Not for the writable layer's
// overlapping inserts: see mutable-index.ts.
//
// Search: when every end fits in an int32 (vsize < 1 TiB), a branchless binary search over an
// Int32Array of ends; above 2048 entries it first searches a small top array holding every 16th
// end (cache-resident), then one 16-entry block (one cache line). Otherwise a plain binary search
// over a Float64Array.

import { leU32Words } from '../u32-words.js';
import { encodeSegment, SEGMENT_BYTES, type Segment } from './segment.js';

const BLOCK = 16;
const BLOCK_SHIFT = 4;
const TWO_LEVEL_MIN = 2048;
const INT32_LIMIT = 0x7fffffff;
const TWO32 = 2 ** 32;

export class SegmentIndex {
  /** Search keys: ends as int32 (fast path) or float64. */
  private readonly keys32: Int32Array | undefined;
  private readonly keys64: Float64Array | undefined;
  private readonly top: Int32Array | undefined;
  /** Largest end (0 if empty). */
  readonly maxEnd: number;

  /** Use SegmentListBuilder or the static constructors. Arrays are taken, not copied. */
  constructor(
    readonly length: number,
    readonly offsets: Float64Array,
    readonly lengths: Uint16Array,
    readonly moffsets: Float64Array,
    readonly zeroed: Uint8Array,
    readonly tags: Uint8Array,
  ) {
    const n = length;
    let maxEnd = 0;
    for (let i = 0; i < n; i++) {
      const e = offsets[i]! + lengths[i]!;
      if (e > maxEnd) maxEnd = e;
    }
    this.maxEnd = maxEnd;
    if (maxEnd < INT32_LIMIT) {
      const k = new Int32Array(n);
      for (let i = 0; i < n; i++) k[i] = offsets[i]! + lengths[i]!;
      this.keys32 = k;
      if (n > TWO_LEVEL_MIN) {
        const m = Math.ceil(n / BLOCK);
        const top = new Int32Array(m);
        for (let i = 0; i < m; i++) top[i] = k[Math.min(n - 1, i * BLOCK + BLOCK - 1)]!;
        this.top = top;
      }
    } else {
      const k = new Float64Array(n);
      for (let i = 0; i < n; i++) k[i] = offsets[i]! + lengths[i]!;
      this.keys64 = k;
    }
  }

  static empty(): SegmentIndex {
    return new SegmentListBuilder(0).build();
  }

  static fromSegments(segs: Iterable<Segment>): SegmentIndex {
    const b = new SegmentListBuilder();
    for (const s of segs) b.push(s.offset, s.length, s.moffset, s.zeroed, s.tag);
    return b.build();
  }

  /**
   * Decode `count` on-disk entries from `bytes`, dropping invalid (padding) entries.
   * Tags are reset to 0 unless `keepTags` (on-disk tags are meaningless outside warp files).
   * One pass straight into the columns (segment.ts's layout, read as u32 words): no per-entry
   * object or call, since a layer's index is parsed on the way to its first mount.
   */
  static decode(bytes: Uint8Array, count: number, opts: { keepTags?: boolean } = {}): SegmentIndex {
    if (bytes.length < count * SEGMENT_BYTES) {
      throw new RangeError(`lsmt index: ${bytes.length} bytes hold fewer than ${count} entries`);
    }
    const w = leU32Words(bytes, count * 4);
    const keepTags = opts.keepTags === true;
    const offsets = new Float64Array(count);
    const lengths = new Uint16Array(count);
    const moffsets = new Float64Array(count);
    const zeroed = new Uint8Array(count);
    const tags = new Uint8Array(count);
    let n = 0;
    for (let i = 0, p = 0; i < count; i++, p += 4) {
      const w0lo = w[p]!;
      const w0hi = w[p + 1]!;
      if (w0lo === 0xffffffff && (w0hi & 0x3ffff) === 0x3ffff) continue; // padding (isInvalidEntry)
      const w1hi = w[p + 3]!;
      offsets[n] = w0lo + (w0hi & 0x3ffff) * TWO32;
      lengths[n] = w0hi >>> 18;
      moffsets[n] = w[p + 2]! + (w1hi & 0x7fffff) * TWO32;
      zeroed[n] = (w1hi >>> 23) & 1;
      if (keepTags) tags[n] = w1hi >>> 24;
      n++;
    }
    if (n === count) return new SegmentIndex(n, offsets, lengths, moffsets, zeroed, tags);
    return new SegmentIndex(
      n,
      offsets.slice(0, n),
      lengths.slice(0, n),
      moffsets.slice(0, n),
      zeroed.slice(0, n),
      tags.slice(0, n),
    );
  }

  /** Encode all entries (no padding). */
  encode(): Uint8Array {
    const out = new Uint8Array(this.length * SEGMENT_BYTES);
    const view = new DataView(out.buffer);
    for (let i = 0; i < this.length; i++) {
      encodeSegment(
        view,
        i * SEGMENT_BYTES,
        this.offsets[i]!,
        this.lengths[i]!,
        this.moffsets[i]!,
        this.zeroed[i] === 1,
        this.tags[i]!,
      );
    }
    return out;
  }

  get(i: number): Segment {
    return {
      offset: this.offsets[i]!,
      length: this.lengths[i]!,
      moffset: this.moffsets[i]!,
      zeroed: this.zeroed[i] === 1,
      tag: this.tags[i]!,
    };
  }

  end(i: number): number {
    return this.offsets[i]! + this.lengths[i]!;
  }

  /** Index of the first mapping whose end > `x` (sectors), or `length` if none. */
  firstEndAfter(x: number): number {
    const n = this.length;
    if (!(x < this.maxEnd)) return n;
    if (x < 0) x = -1;
    const k32 = this.keys32;
    if (k32 === undefined) return this.search64(x);
    x |= 0;
    const top = this.top;
    let lo = 0;
    let len = n;
    if (top !== undefined) {
      let base = 0;
      let tl = top.length;
      while (tl > 1) {
        const half = tl >>> 1;
        base += half & ((top[base + half - 1]! - x - 1) >> 31);
        tl -= half;
      }
      base += (top[base]! - x - 1) >>> 31;
      lo = base << BLOCK_SHIFT;
      len = Math.min(BLOCK, n - lo);
    }
    while (len > 1) {
      const half = len >>> 1;
      lo += half & ((k32[lo + half - 1]! - x - 1) >> 31);
      len -= half;
    }
    return lo + ((k32[lo]! - x - 1) >>> 31);
  }

  private search64(x: number): number {
    const k = this.keys64!;
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (k[m]! <= x) lo = m + 1;
      else hi = m;
    }
    return lo;
  }

  /**
   * The mappings intersecting [b, e) (sectors), in order, the first and last trimmed to the range
   * (moffset advanced on a front trim unless zeroed).
   */
  overlapping(b: number, e: number): Segment[] {
    const out: Segment[] = [];
    if (e <= b) return out;
    for (let i = this.firstEndAfter(b); i < this.length && this.offsets[i]! < e; i++) {
      out.push(trimSegment(this.get(i), b, e));
    }
    return out;
  }

  /** Total sectors of non-zeroed mappings. */
  dataSectors(): number {
    let s = 0;
    for (let i = 0; i < this.length; i++) if (this.zeroed[i] === 0) s += this.lengths[i]!;
    return s;
  }

  toArray(): Segment[] {
    const out: Segment[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.get(i);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<Segment> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}

/** Trim `s` in place to [b, e) and return it. Caller guarantees it intersects. */
export function trimSegment(s: Segment, b: number, e: number): Segment {
  if (s.offset < b) {
    const d = b - s.offset;
    s.offset = b;
    s.length -= d;
    if (!s.zeroed) s.moffset += d;
  }
  if (s.offset + s.length > e) s.length = e - s.offset;
  return s;
}

/** A growable column store of mappings, frozen into a SegmentIndex by build(). */
export class SegmentListBuilder {
  private cap: number;
  private n = 0;
  private offsets: Float64Array;
  private lengths: Uint16Array;
  private moffsets: Float64Array;
  private zeroed: Uint8Array;
  private tags: Uint8Array;

  constructor(capacity = 64) {
    this.cap = Math.max(1, capacity);
    this.offsets = new Float64Array(this.cap);
    this.lengths = new Uint16Array(this.cap);
    this.moffsets = new Float64Array(this.cap);
    this.zeroed = new Uint8Array(this.cap);
    this.tags = new Uint8Array(this.cap);
  }

  get length(): number {
    return this.n;
  }

  push(offset: number, length: number, moffset: number, zeroed: boolean, tag: number): void {
    if (this.n === this.cap) this.grow();
    const i = this.n++;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.moffsets[i] = moffset;
    this.zeroed[i] = zeroed ? 1 : 0;
    this.tags[i] = tag;
  }

  pushSegment(s: Segment): void {
    this.push(s.offset, s.length, s.moffset, s.zeroed, s.tag);
  }

  build(): SegmentIndex {
    const n = this.n;
    return new SegmentIndex(
      n,
      this.offsets.slice(0, n),
      this.lengths.slice(0, n),
      this.moffsets.slice(0, n),
      this.zeroed.slice(0, n),
      this.tags.slice(0, n),
    );
  }

  private grow(): void {
    this.cap *= 2;
    const g = <T extends Float64Array | Uint16Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(this.cap);
      b.set(a);
      return b;
    };
    this.offsets = g(this.offsets, (n) => new Float64Array(n));
    this.lengths = g(this.lengths, (n) => new Uint16Array(n));
    this.moffsets = g(this.moffsets, (n) => new Float64Array(n));
    this.zeroed = g(this.zeroed, (n) => new Uint8Array(n));
    this.tags = g(this.tags, (n) => new Uint8Array(n));
  }
}
