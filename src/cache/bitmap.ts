// Page bitmaps: one bit per 4 KiB page of a cached blob, bit (p & 7) of byte (p >> 3), LSB first.
// Pure helpers over a Uint8Array; the on-disk placement is in layout.ts.

/** True when every page in [p0, p1) is set (an empty range is all set). */
export function allSet(bm: Uint8Array, p0: number, p1: number): boolean {
  let p = p0;
  while (p < p1 && (p & 7) !== 0) {
    if ((bm[p >> 3]! & (1 << (p & 7))) === 0) return false;
    p++;
  }
  while (p + 8 <= p1) {
    if (bm[p >> 3] !== 0xff) return false;
    p += 8;
  }
  while (p < p1) {
    if ((bm[p >> 3]! & (1 << (p & 7))) === 0) return false;
    p++;
  }
  return true;
}

/** True when page `p` is set. */
export function isSet(bm: Uint8Array, p: number): boolean {
  return (bm[p >> 3]! & (1 << (p & 7))) !== 0;
}

/** Set pages [p0, p1). */
export function setRange(bm: Uint8Array, p0: number, p1: number): void {
  for (let p = p0; p < p1; p++) {
    if ((p & 7) === 0 && p + 8 <= p1) {
      bm[p >> 3] = 0xff;
      p += 7;
    } else bm[p >> 3]! |= 1 << (p & 7);
  }
}

/** Clear pages [p0, p1). */
export function clearRange(bm: Uint8Array, p0: number, p1: number): void {
  for (let p = p0; p < p1; p++) {
    if ((p & 7) === 0 && p + 8 <= p1) {
      bm[p >> 3] = 0;
      p += 7;
    } else bm[p >> 3]! &= ~(1 << (p & 7));
  }
}

/** Number of set pages among the first `pages`. */
export function countSet(bm: Uint8Array, pages: number): number {
  let n = 0;
  const full = pages >> 3;
  for (let i = 0; i < full; i++) {
    let b = bm[i]!;
    while (b) {
      b &= b - 1;
      n++;
    }
  }
  for (let p = full * 8; p < pages; p++) if (isSet(bm, p)) n++;
  return n;
}

/** The maximal runs [start, end) of clear pages within [p0, p1), in order. */
export function clearRuns(bm: Uint8Array, p0: number, p1: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let start = -1;
  for (let p = p0; p < p1; p++) {
    const set = isSet(bm, p);
    if (!set && start < 0) start = p;
    else if (set && start >= 0) {
      runs.push([start, p]);
      start = -1;
    }
  }
  if (start >= 0) runs.push([start, p1]);
  return runs;
}
