// How fast does the block cache read a blob from a registry-like source (4 ms per request,
// 200 MiB/s per request, 400 MiB/s shared), cold and warm, with refill units of 256 KiB and 1 MiB?
// Baselines in the same run: cold — raw source reads of the same ranges at the same depth (what
// the link gives without a cache); warm — the same reads from a local file (page cache).
// Random 4 KiB reads go to a synthetic 2 GiB blob (zeros), where they rarely share a refill unit,
// so bytes fetched / bytes read shows what the refill unit costs.
// Readahead: cold sequential 128 KiB reads, 1 in flight, over a 20 ms/request remote (a WAN
// registry), with readahead at its default (1 MiB) and 4 MiB against readahead off.
// Usage: tsx bench/cache-read.ts [blobMiB=96] [random4kReads=800]

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockFile } from '../src/blockfile/blockfile.js';
import { LocalFile } from '../src/blockfile/local.js';
import { MemoryFile } from '../src/blockfile/memory.js';
import { BlockCache } from '../src/cache/cache.js';
import { patternBytes, type RemoteModel, SimulatedRemote } from '../src/cache/testing.js';
import { type BenchRow, report } from './report.js';

const KiB = 1024;
const MiB = 1 << 20;
const blobMiB = Number(process.argv[2] ?? 96);
const randomReads = Number(process.argv[3] ?? 800);
const SPARSE = 2 * 1024 * MiB;
const model: RemoteModel = { latencyMs: 4, perRequestBandwidth: 200 * MiB, bandwidth: 400 * MiB };
const key = `sha256:${'ab'.repeat(32)}`;

/** Read `ranges` ([offset, length]) with `depth` reads in flight; returns MB/s (MiB) of bytes read. */
async function run(file: BlockFile, ranges: Array<[number, number]>, depth: number): Promise<number> {
  const max = Math.max(...ranges.map(([, l]) => l));
  const bufs = Array.from({ length: depth }, () => Buffer.allocUnsafe(max));
  let next = 0;
  let bytes = 0;
  const t0 = performance.now();
  await Promise.all(
    bufs.map(async (buf) => {
      while (next < ranges.length) {
        const [off, len] = ranges[next++]!;
        const n = await file.read(buf.subarray(0, len), off);
        bytes += n; // not `bytes += await …`: that reads `bytes` before the await
      }
    }),
  );
  return bytes / MiB / ((performance.now() - t0) / 1000);
}

/** A large blob of zeros, for random reads that should rarely land in the same refill unit. */
const zeros: BlockFile = {
  name: 'zeros',
  size: SPARSE,
  async read(buf, offset) {
    const n = Math.max(0, Math.min(buf.length, SPARSE - offset));
    buf.fill(0, 0, n);
    return n;
  },
  async close() {},
};

function sequential(size: number, chunk: number): Array<[number, number]> {
  const r: Array<[number, number]> = [];
  for (let o = 0; o < size; o += chunk) r.push([o, Math.min(chunk, size - o)]);
  return r;
}

function random(size: number, n: number, len: number, seed: number): Array<[number, number]> {
  let x = seed;
  const r: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    r.push([Math.floor((x / 0x80000000) * (size / len)) * len, len]);
  }
  return r;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'dadi-bench-cache-'));
  const rows: BenchRow[] = [];
  try {
    const size = blobMiB * MiB;
    const path = join(work, 'blob.bin');
    const bytes = patternBytes(size, 9);
    await writeFile(path, bytes);
    // The remote serves from memory: its speed is the model's, not this machine's disk.
    const remoteData = new MemoryFile(bytes);
    const local = await LocalFile.open(path);
    const seq1M = sequential(size, MiB);
    const rnd4k = random(SPARSE, randomReads, 4 * KiB, 7);

    // Cold baselines: the simulated remote alone.
    const rawSeq1 = await run(new SimulatedRemote(remoteData, model), seq1M, 1);
    const rawSeq8 = await run(new SimulatedRemote(remoteData, model), seq1M, 8);
    const rawRnd = new SimulatedRemote(zeros, model);
    const rawRnd8 = await run(rawRnd, rnd4k, 8);

    for (const refill of [256 * KiB, MiB]) {
      const label = refill === MiB ? '1 MiB' : '256 KiB';
      const cold = async (ranges: Array<[number, number]>, depth: number, data: BlockFile = remoteData) => {
        const dir = join(work, `c-${refill}-${depth}-${ranges.length}`);
        const cache = await BlockCache.open(dir, { refillSize: refill, diskFloor: 0 });
        const src = new SimulatedRemote(data, model);
        const blob = cache.open(key, src);
        const mbs = await run(blob, ranges, depth);
        const readBytes = ranges.reduce((n, [, l]) => n + l, 0);
        await cache.flush();
        const s = blob.stats();
        await blob.close();
        await cache.close();
        await rm(dir, { recursive: true, force: true });
        return { mbs, requests: src.requests, fetched: src.bytes, ratio: src.bytes / readBytes, stats: s };
      };
      const s1 = await cold(seq1M, 1);
      rows.push({
        case: `cold sequential 1 MiB reads, 1 in flight, refill ${label}`,
        unit: 'MiB/s',
        value: s1.mbs,
        baseline: rawSeq1,
        baselineName: 'raw remote, same reads',
        extra: { requests: s1.requests, fetchedOverRead: s1.ratio },
      });
      const s8 = await cold(seq1M, 8);
      rows.push({
        case: `cold sequential 1 MiB reads, 8 in flight, refill ${label}`,
        unit: 'MiB/s',
        value: s8.mbs,
        baseline: rawSeq8,
        baselineName: 'raw remote, same reads',
        extra: { requests: s8.requests, fetchedOverRead: s8.ratio, persistSkipped: s8.stats.persistSkipped },
      });
      const r8 = await cold(rnd4k, 8, zeros);
      rows.push({
        case: `cold random 4 KiB reads (2 GiB blob), 8 in flight, refill ${label}`,
        unit: 'MiB/s',
        value: r8.mbs,
        baseline: rawRnd8,
        baselineName: 'raw remote 4 KiB reads',
        extra: {
          reads: rnd4k.length,
          requests: r8.requests,
          fetchedOverRead: r8.ratio,
          hitBytes: r8.stats.hitBytes,
          joinedBytes: r8.stats.joinedBytes,
        },
      });
    }

    // Readahead over a slow link: one reader, sequential 128 KiB reads.
    const slow: RemoteModel = { ...model, latencyMs: 20 };
    const raSize = Math.min(size, 32 * MiB);
    const seq128k = sequential(raSize, 128 * KiB);
    const seqRa = async (readahead: number) => {
      const dir = join(work, `ra-${readahead}`);
      const cache = await BlockCache.open(dir, { diskFloor: 0, readahead });
      const src = new SimulatedRemote(remoteData, slow);
      const blob = cache.open(key, src);
      const mbs = await run(blob, seq128k, 1);
      await cache.flush();
      const s = blob.stats();
      await blob.close();
      await cache.close();
      await rm(dir, { recursive: true, force: true });
      return { mbs, requests: src.requests, ratio: src.bytes / raSize, stats: s };
    };
    const raOff = await seqRa(0);
    for (const ra of [MiB, 4 * MiB]) {
      const r = await seqRa(ra);
      rows.push({
        case: `cold sequential 128 KiB reads, 1 in flight, 20 ms/request, readahead ${ra / MiB} MiB`,
        unit: 'MiB/s',
        value: r.mbs,
        baseline: raOff.mbs,
        baselineName: 'readahead off',
        extra: {
          requests: r.requests,
          requestsOff: raOff.requests,
          demandFetches: r.stats.fetches - r.stats.readaheadFetches,
          readaheadBytes: r.stats.readaheadBytes,
          readaheadHitBytes: r.stats.readaheadHitBytes,
          fetchedOverRead: r.ratio,
        },
      });
    }

    // Warm: everything cached.
    const dir = join(work, 'warm');
    const cache = await BlockCache.open(dir, { diskFloor: 0 });
    const src = new SimulatedRemote(remoteData, model);
    const blob = cache.open(key, src);
    await run(blob, seq1M, 8);
    await cache.flush();
    const fetched = src.requests;
    await run(local, seq1M, 8); // page-cache the baseline file
    const warmSeq = await run(blob, seq1M, 1);
    const baseSeq = await run(local, seq1M, 1);
    const warmRnd = await run(blob, random(size, 20000, 4 * KiB, 3), 8);
    const baseRnd = await run(local, random(size, 20000, 4 * KiB, 3), 8);
    const warmSeq2 = await run(blob, seq1M, 1);
    const baseSeq2 = await run(local, seq1M, 1);
    if (src.requests !== fetched) throw new Error('warm reads went to the source');
    rows.push({
      case: 'warm sequential 1 MiB reads, 1 in flight',
      unit: 'MiB/s',
      value: Math.max(warmSeq, warmSeq2),
      baseline: Math.max(baseSeq, baseSeq2),
      baselineName: 'local file',
    });
    rows.push({
      case: 'warm random 4 KiB reads, 8 in flight',
      unit: 'MiB/s',
      value: warmRnd,
      baseline: baseRnd,
      baselineName: 'local file',
    });
    await blob.close();
    await cache.close();
    await local.close();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  report('cache-read', `Block cache reads over a simulated registry (4 ms/request, ${blobMiB} MiB blob)`, rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
