// The writable layer's in-memory index: an ordered set of non-overlapping mappings where a new
// mapping overrides whatever it overlaps (spec §2.8 insert). Not for sealed layers: see
// segment-index.ts, which this dumps into for commit and snapshots.
//
// Storage: a list of chunks, each a sorted run of at most CHUNK_CAP entries packed four numbers
// per entry (offset, length, moffset, zeroed | tag << 1) in one Float64Array. An insert costs a
// binary search plus a shift inside one chunk, so 100k+ random small writes stay fast.

import type { Segment } from './segment.js';
import { type SegmentIndex, SegmentListBuilder, trimSegment } from './segment-index.js';

const CHUNK_CAP = 512;
const W = 4; // numbers per entry

class Chunk {
  n = 0;
  readonly d = new Float64Array(CHUNK_CAP * W);
  lastEnd(): number {
    const p = (this.n - 1) * W;
    return this.d[p]! + this.d[p + 1]!;
  }
}

export class MutableIndex {
  private chunks: Chunk[] = [];
  private count = 0;
  private dataSecs = 0;

  /** Number of mappings. */
  get size(): number {
    return this.count;
  }

  /** Total sectors of non-zeroed mappings. */
  dataSectors(): number {
    return this.dataSecs;
  }

  /** Insert `s`, cutting, splitting or removing the mappings it overlaps (later wins). */
  insert(s: Segment): void {
    this.insertRaw(s.offset, s.length, s.moffset, s.zeroed, s.tag);
  }

  insertRaw(offset: number, length: number, moffset: number, zeroed: boolean, tag: number): void {
    if (length === 0) return;
    const nEnd = offset + length;
    const flags = (zeroed ? 1 : 0) | (tag << 1);
    const items: number[] = [];
    const [ci, i] = this.locate(offset);
    if (ci === this.chunks.length) {
      // Nothing ends after `offset`: append.
      const last = this.chunks.length - 1;
      items.push(offset, length, moffset, flags);
      this.splice(Math.max(0, last), last < 0 ? 0 : this.chunks[last]!.n, 0, items);
      return;
    }
    const first = this.chunks[ci]!;
    const eOff = first.d[i * W]!;
    if (eOff < offset) {
      // Left remainder [E.offset, N.offset) keeps E's moffset.
      items.push(eOff, offset - eOff, first.d[i * W + 2]!, first.d[i * W + 3]!);
    }
    items.push(offset, length, moffset, flags);
    // Count the mappings that start before N.end; remember the last one.
    let del = 0;
    let lc: Chunk | undefined;
    let lj = 0;
    for (let c = ci, j = i; c < this.chunks.length; ) {
      const ch = this.chunks[c]!;
      if (j >= ch.n) {
        c++;
        j = 0;
        continue;
      }
      if (ch.d[j * W]! >= nEnd) break;
      lc = ch;
      lj = j;
      del++;
      j++;
    }
    if (lc !== undefined) {
      const p = lj * W;
      const lOff = lc.d[p]!;
      const lEnd = lOff + lc.d[p + 1]!;
      if (lEnd > nEnd) {
        // Right remainder [N.end, E.end), moffset advanced unless zeroed.
        const lFlags = lc.d[p + 3]!;
        const adv = (lFlags & 1) === 1 ? 0 : nEnd - lOff;
        items.push(nEnd, lEnd - nEnd, lc.d[p + 2]! + adv, lFlags);
      }
    }
    this.splice(ci, i, del, items);
  }

  /** The mappings intersecting [b, e) (sectors), first and last trimmed to the range. */
  overlapping(b: number, e: number): Segment[] {
    const out: Segment[] = [];
    if (e <= b) return out;
    let [c, j] = this.locate(b);
    while (c < this.chunks.length) {
      const ch = this.chunks[c]!;
      if (j >= ch.n) {
        c++;
        j = 0;
        continue;
      }
      if (ch.d[j * W]! >= e) break;
      out.push(trimSegment(entry(ch, j), b, e));
      j++;
    }
    return out;
  }

  *[Symbol.iterator](): IterableIterator<Segment> {
    for (const ch of this.chunks) for (let j = 0; j < ch.n; j++) yield entry(ch, j);
  }

  toArray(): Segment[] {
    return [...this];
  }

  /** A sorted immutable snapshot (for reads, commit, close-seal). */
  toSegmentIndex(tag?: number): SegmentIndex {
    const b = new SegmentListBuilder(Math.max(1, this.count));
    for (const ch of this.chunks) {
      const d = ch.d;
      for (let j = 0; j < ch.n; j++) {
        const p = j * W;
        const f = d[p + 3]!;
        b.push(d[p]!, d[p + 1]!, d[p + 2]!, (f & 1) === 1, tag ?? f >>> 1);
      }
    }
    return b.build();
  }

  /** Chunk and position of the first mapping whose end > x; [chunks.length, 0] if none. */
  private locate(x: number): [number, number] {
    const cs = this.chunks;
    let lo = 0;
    let hi = cs.length;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (cs[m]!.lastEnd() <= x) lo = m + 1;
      else hi = m;
    }
    if (lo === cs.length) return [lo, 0];
    const d = cs[lo]!.d;
    let a = 0;
    let b = cs[lo]!.n;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (d[m * W]! + d[m * W + 1]! <= x) a = m + 1;
      else b = m;
    }
    return [lo, a];
  }

  /** Delete `del` entries from (ci, i) on (may span chunks), then insert `items` (flat) at (ci, i). */
  private splice(ci: number, i: number, del: number, items: number[]): void {
    const k = items.length / W;
    if (this.chunks.length === 0) this.chunks.push(new Chunk());
    const cs = this.chunks;
    let rem = del;
    if (rem > 0) {
      const ch = cs[ci]!;
      const n0 = Math.min(rem, ch.n - i);
      this.account(ch, i, n0, -1);
      ch.d.copyWithin(i * W, (i + n0) * W, ch.n * W);
      ch.n -= n0;
      rem -= n0;
      let cj = ci + 1;
      let whole = 0;
      while (rem > 0 && cs[cj + whole]!.n <= rem) {
        const c = cs[cj + whole]!;
        this.account(c, 0, c.n, -1);
        rem -= c.n;
        whole++;
      }
      if (whole > 0) cs.splice(cj, whole);
      if (rem > 0) {
        const c = cs[cj]!;
        this.account(c, 0, rem, -1);
        c.d.copyWithin(0, rem * W, c.n * W);
        c.n -= rem;
        cj++;
      }
      this.count -= del;
    }
    let ch = cs[ci]!;
    let at = i;
    if (ch.n + k > CHUNK_CAP) {
      const half = ch.n >>> 1;
      const next = new Chunk();
      next.d.set(ch.d.subarray(half * W, ch.n * W));
      next.n = ch.n - half;
      ch.n = half;
      cs.splice(ci + 1, 0, next);
      if (at > half) {
        ch = next;
        at -= half;
      }
    }
    ch.d.copyWithin((at + k) * W, at * W, ch.n * W);
    ch.d.set(items, at * W);
    ch.n += k;
    this.count += k;
    this.account(ch, at, k, 1);
  }

  private account(ch: Chunk, from: number, n: number, sign: 1 | -1): void {
    const d = ch.d;
    for (let j = from; j < from + n; j++) {
      if ((d[j * W + 3]! & 1) === 0) this.dataSecs += sign * d[j * W + 1]!;
    }
  }
}

function entry(ch: Chunk, j: number): Segment {
  const p = j * W;
  const f = ch.d[p + 3]!;
  return { offset: ch.d[p]!, length: ch.d[p + 1]!, moffset: ch.d[p + 2]!, zeroed: (f & 1) === 1, tag: f >>> 1 };
}
