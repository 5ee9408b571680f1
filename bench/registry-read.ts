// How fast does RemoteBlob read a blob from a real registry (docker-registry on loopback), against
// raw undici Pool range GETs of the same ranges? Sequential and random 1 MiB ranges, 1 and 8 in
// flight. Cold for dadi (no cache); the registry's own page cache is warm for both.
// Usage: tsx bench/registry-read.ts [blobMiB=256] [rounds=3]

import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import { RegistryClient } from '../src/registry/client.js';
import { RemoteBlob } from '../src/registry/remote-blob.js';
import { haveRegistry, startRegistry } from '../test/integration/registry-harness.js';
import { type BenchRow, report } from './report.js';

const MiB = 1 << 20;
const blobMiB = Number(process.argv[2] ?? 256);
const rounds = Number(process.argv[3] ?? 3);
const RANGE = MiB;

type Reader = (offset: number, buf: Buffer) => Promise<void>;

/** Read the given 1 MiB-range offsets with `inflight` lanes; returns [MiB/s, requests/s]. */
async function run(offsets: number[], inflight: number, read: Reader): Promise<[number, number]> {
  const bufs = Array.from({ length: inflight }, () => Buffer.allocUnsafe(RANGE));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    bufs.map(async (buf) => {
      while (next < offsets.length) await read(offsets[next++]!, buf);
    }),
  );
  const s = (performance.now() - t0) / 1000;
  return [(offsets.length * RANGE) / MiB / s, offsets.length / s];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  if (!haveRegistry('bench/registry-read')) return;
  const reg = await startRegistry();
  const client = new RegistryClient({ connections: 8 });
  const pool = new Pool(reg.url, { connections: 8, pipelining: 1 });
  try {
    const repo = { registry: reg.host, repository: 'bench/blob' };
    const data = randomBytes(blobMiB * MiB);
    const t0 = performance.now();
    const { digest } = await client.pushBlob(repo, data);
    const pushMiBs = blobMiB / ((performance.now() - t0) / 1000);
    const blob = await RemoteBlob.open(client, repo, digest, { maxRangeBytes: RANGE });
    const path = `/v2/${repo.repository}/blobs/${digest}`;

    const raw: Reader = async (offset, buf) => {
      const r = await pool.request({
        path,
        method: 'GET',
        headers: { range: `bytes=${offset}-${offset + RANGE - 1}` },
      });
      if (r.statusCode !== 206) throw new Error(`status ${r.statusCode}`);
      let n = 0;
      for await (const c of r.body as AsyncIterable<Buffer>) {
        c.copy(buf, n);
        n += c.length;
      }
      if (n !== RANGE) throw new Error('short');
    };
    const dadi: Reader = async (offset, buf) => {
      const n = await blob.read(buf, offset);
      if (n !== RANGE) throw new Error('short');
    };

    const count = blobMiB;
    const seq = Array.from({ length: count }, (_, i) => i * RANGE);
    const rnd = Array.from({ length: count }, () => Math.floor(Math.random() * count) * RANGE);
    // Check once that the candidate returns the right bytes.
    const check = Buffer.alloc(RANGE);
    await dadi(rnd[0]!, check);
    if (!check.equals(data.subarray(rnd[0]!, rnd[0]! + RANGE))) throw new Error('wrong bytes');

    const rows: BenchRow[] = [];
    for (const [name, offsets] of [
      ['sequential', seq],
      ['random', rnd],
    ] as const) {
      for (const inflight of [1, 8]) {
        const base: Array<[number, number]> = [];
        const cand: Array<[number, number]> = [];
        for (let r = 0; r < rounds; r++) {
          base.push(await run(offsets, inflight, raw));
          cand.push(await run(offsets, inflight, dadi));
        }
        const extra = { rangeMiB: 1, reads: offsets.length, rounds, blobMiB };
        rows.push({
          case: `${name} 1 MiB ranges, ${inflight} in flight`,
          unit: 'MiB/s',
          value: median(cand.map((x) => x[0])),
          baseline: median(base.map((x) => x[0])),
          baselineName: 'undici Pool GETs',
          extra,
        });
        rows.push({
          case: `${name} 1 MiB ranges, ${inflight} in flight`,
          unit: 'requests/s',
          value: median(cand.map((x) => x[1])),
          baseline: median(base.map((x) => x[1])),
          baselineName: 'undici Pool GETs',
          extra,
        });
      }
    }
    // One large read split by RemoteBlob itself (8 MiB reads, 1 MiB ranges, 4 in flight per read).
    const big = Buffer.allocUnsafe(8 * MiB);
    const tb = performance.now();
    for (let off = 0; off + big.length <= data.length; off += big.length) await blob.read(big, off);
    rows.push({
      case: 'sequential 8 MiB reads split into 1 MiB ranges (parallel 4)',
      unit: 'MiB/s',
      value: blobMiB / ((performance.now() - tb) / 1000),
      extra: { pushMiBs: Math.round(pushMiBs), stats: blob.stats },
    });
    report('registry-read', 'Registry range reads: RemoteBlob vs raw undici Pool (docker-registry on loopback)', rows);
  } finally {
    await pool.close();
    await client.close();
    await reg.stop();
  }
}

await main();
