// Account for every registry byte of a start, from the fetch logs a daemon writes with
// $DADI_FETCH_LOG=PREFIX (src/util/fetch-log.ts; one PREFIX.<pid>.jsonl per process): per reason
// (ZFile/LSMT index, ext4 metadata prefetch, launch files, file readahead, cache readahead, demand),
// the range GETs and their bytes, and how many of those bytes the kernel's reads (reads of the
// cached blob outside any prefetch, i.e. the ZFile blocks it decoded) ever covered; then the chain
// of dependent round trips: GETs that started while no other was in flight. A GET the cache merged
// from several fetches (src/cache/merge.ts; its reason is theirs joined by +) is split by its part
// records: each reason's row counts the GET and its parts' bytes, the bytes between the parts go
// to the row "merge-gap", and the total counts the GET once.
//
// Last, where the kernel's READs of the FUSE export waited (the `fuse` records: from the request
// reaching the handler to its reply): with a GET in flight, by the GETs' reasons, or with none
// (the daemon's own time: cache-file reads, decoding, a busy event loop), and how long the event
// loop ran late (`lag` records) meanwhile.
//
// Usage: DADI_FETCH_LOG=/tmp/fl/run npm run bench:coldstart -- --runs 1 ... ;
//        node --import tsx bench/fetch-account.ts /tmp/fl/run [--list]

import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FetchLogRecord } from '../src/util/fetch-log.js';

/** A record as fetch-log.ts writes it. */
type Rec = FetchLogRecord & { why: string };

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { list: { type: 'boolean', default: false } },
});
const prefix = positionals[0];
if (!prefix) throw new Error('usage: fetch-account.ts PREFIX [--list]');

const files = readdirSync(dirname(prefix))
  .filter((f) => f.startsWith(`${basename(prefix)}.`) && f.endsWith('.jsonl'))
  .map((f) => join(dirname(prefix), f));
for (const file of files) {
  const recs = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
  const gets = recs.filter((r) => r.k === 'get').sort((a, b) => a.t0 - b.t0);
  if (!gets.length) continue;
  console.log(`\n== ${file}`);
  const u = account(recs, gets);
  chain(gets, u);
  kernelWaits(recs, gets);
}

/** Sorted, merged intervals. */
function union(ranges: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of ranges.sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

function overlap(u: Array<[number, number]>, a: number, b: number): number {
  let n = 0;
  for (const [x, y] of u) {
    if (y <= a) continue;
    if (x >= b) break;
    n += Math.min(b, y) - Math.max(a, x);
  }
  return n;
}

type Unions = { kernel: Map<string, Array<[number, number]>>; any: Map<string, Array<[number, number]>> };

function account(recs: Rec[], gets: Rec[]): Unions {
  const demand = new Map<string, Array<[number, number]>>();
  const anyRead = new Map<string, Array<[number, number]>>();
  for (const r of recs) {
    if (r.k !== 'read') continue;
    const m = r.why === 'demand' ? demand : anyRead;
    if (!m.has(r.blob)) m.set(r.blob, []);
    m.get(r.blob)!.push([r.off, r.off + r.len]);
    if (r.why === 'demand') {
      if (!anyRead.has(r.blob)) anyRead.set(r.blob, []);
      anyRead.get(r.blob)!.push([r.off, r.off + r.len]);
    }
  }
  const dU = new Map([...demand].map(([k, v]) => [k, union(v)]));
  const aU = new Map([...anyRead].map(([k, v]) => [k, union(v)]));
  const rows = new Map<string, { n: number; bytes: number; kernel: number; read: number }>();
  let total = 0;
  let kernel = 0;
  let merged = 0;
  const partsAt = new Map<string, Rec[]>();
  for (const r of recs) {
    if (r.k !== 'part') continue;
    const k = `${r.blob} ${r.of}`;
    partsAt.set(k, [...(partsAt.get(k) ?? []), r]);
  }
  const count = (why: string, blob: string, off: number, len: number, newGet: boolean) => {
    const row = rows.get(why) ?? { n: 0, bytes: 0, kernel: 0, read: 0 };
    if (newGet) row.n++;
    row.bytes += len;
    row.kernel += overlap(dU.get(blob) ?? [], off, off + len);
    row.read += overlap(aU.get(blob) ?? [], off, off + len);
    rows.set(why, row);
  };
  for (const g of gets) {
    total += g.len;
    kernel += overlap(dU.get(g.blob) ?? [], g.off, g.off + g.len);
    // Its parts: logged just before it started, at its offset.
    const mine = (partsAt.get(`${g.blob} ${g.off}`) ?? []).filter((p) => p.t0 <= g.t0 && g.t0 - p.t0 < 1000);
    if (!mine.length) {
      count(g.why, g.blob, g.off, g.len, true);
      continue;
    }
    merged++;
    const seen = new Set<string>();
    for (const p of mine) {
      count(p.why, p.blob, p.off, p.len, !seen.has(p.why));
      seen.add(p.why);
    }
    const asked = union(mine.map((p) => [p.off, p.off + p.len] as [number, number]));
    const gap = g.len - asked.reduce((n, [x, y]) => n + y - x, 0);
    if (gap > 0) {
      const row = rows.get('merge-gap') ?? { n: 0, bytes: 0, kernel: 0, read: 0 };
      row.bytes += gap;
      rows.set('merge-gap', row);
    }
  }
  const mb = (n: number) => (n / 1e6).toFixed(3).padStart(7);
  console.log('why               GETs   fetched MB  kernel-read MB  any-read MB');
  for (const [why, r] of [...rows].sort((a, b) => b[1].bytes - a[1].bytes)) {
    console.log(
      `${why.padEnd(16)} ${String(r.n).padStart(5)} ${mb(r.bytes)}      ${mb(r.kernel)}        ${mb(r.read)}`,
    );
  }
  let demandBytes = 0;
  for (const u of dU.values()) for (const [a, b] of u) demandBytes += b - a;
  console.log(
    `total            ${String(gets.length).padStart(5)} ${mb(total)}      ${mb(kernel)}   (kernel read ${mb(demandBytes)} MB of compressed blocks in all)`,
  );
  if (merged) console.log(`merged GETs (several fetches' ranges in one): ${merged} of ${gets.length}`);
  return { kernel: dU, any: aU };
}

function chain(gets: Rec[], u: Unions): void {
  const t0 = gets[0]!.t0;
  let serial = 0;
  let lastEnd = 0;
  const lines: string[] = [];
  for (const g of gets) {
    const alone = !gets.some((o) => o !== g && o.t0 < g.t0 && (o.t1 ?? o.t0) > g.t0);
    if (alone) serial++;
    lines.push(
      `${(g.t0 - t0).toFixed(1).padStart(8)} ${((g.t1 ?? g.t0) - g.t0).toFixed(1).padStart(7)} ` +
        `${alone ? `S +${(g.t0 - lastEnd).toFixed(1).padStart(6)}` : '         '} ${g.why.padEnd(16)} ` +
        `${g.blob.slice(7, 15)} ${String(g.off).padStart(10)} +${String(g.len).padEnd(8)} ` +
        `kernel ${overlap(u.kernel.get(g.blob) ?? [], g.off, g.off + g.len)} any ${overlap(u.any.get(g.blob) ?? [], g.off, g.off + g.len)}`,
    );
    lastEnd = Math.max(lastEnd, g.t1 ?? g.t0);
  }
  console.log(`serial GETs (started while none in flight): ${serial} of ${gets.length}`);
  if (values.list) console.log(lines.join('\n'));
}

/**
 * The time some kernel READ was pending, sliced by what was in flight meanwhile: GETs (named by
 * their first reason; "demand" if any is; "many" past 8 at once) or none (the daemon's own time).
 */
function kernelWaits(recs: Rec[], gets: Rec[]): void {
  // READs only (the other requests name their opcode in blob).
  const fuse = recs.filter((r) => r.k === 'fuse' && r.blob === '' && r.t1 !== undefined);
  if (!fuse.length) return;
  const pending = union(fuse.map((r) => [r.t0, r.t1!] as [number, number]));
  // Boundaries where what is in flight can change: GET starts and ends inside a pending stretch.
  const cuts = gets.flatMap((g) => [g.t0, g.t1!]).sort((a, b) => a - b);
  const by = new Map<string, number>();
  let total = 0;
  for (const [a, b] of pending) {
    total += b - a;
    const edges = [a, ...cuts.filter((t) => t > a && t < b), b];
    for (let i = 0; i + 1 < edges.length; i++) {
      const [x, y] = [edges[i]!, edges[i + 1]!];
      const mid = (x + y) / 2;
      const live = gets.filter((g) => g.t0 <= mid && mid < g.t1!);
      const whys = [...new Set(live.map((g) => g.why.split('+')[0]!))].sort();
      let key = live.length === 0 ? 'no GET (daemon)' : whys.includes('demand') ? 'demand' : whys.join('/');
      if (live.length > 8) key += ', >8 in flight';
      by.set(key, (by.get(key) ?? 0) + y - x);
    }
  }
  console.log(`kernel READs ${fuse.length}: some pending for ${total.toFixed(0)} ms, meanwhile in flight:`);
  for (const [k, ms] of [...by].sort((x, y) => y[1] - x[1]))
    console.log(`  ${k.padEnd(40)} ${ms.toFixed(0).padStart(5)} ms`);
  // The event loop running late (`lag` records): the daemon's thread busy or descheduled.
  const lags = union(recs.filter((r) => r.k === 'lag' && r.t1 !== undefined).map((r) => [r.t0, r.t1!]));
  if (!lags.length) return;
  const span: [number, number] = [gets[0]!.t0, Math.max(...fuse.map((r) => r.t1!))];
  const inSpan = lags.reduce((n, [a, b]) => n + Math.max(0, Math.min(b, span[1]) - Math.max(a, span[0])), 0);
  const whilePending = pending.reduce((n, [a, b]) => n + lags.reduce((m, [x, y]) => m + overlap([[x, y]], a, b), 0), 0);
  console.log(
    `event loop late (timer > 2 ms behind): ${inSpan.toFixed(0)} ms of the ${(span[1] - span[0]).toFixed(0)} ms from the first GET to the last READ, ${whilePending.toFixed(0)} ms of it while a READ was pending`,
  );
}
