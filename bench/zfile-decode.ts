// Decode cost of a ZFile block by codec, on real image content: the regular files under DIR (the
// coldstart benchmark's python rootfs by default), cut into blocks as the converter does, each
// compressed with LZ4 and with zstd (level 3, the reference's) by the codecs ZFile uses. Reports
// the compressed size of both, and the CPU time to decode every block once (best of --rounds,
// codecs alternated), per block and per uncompressed MB — what a cold start's misses pay.
//
// Usage: node --import tsx bench/zfile-decode.ts [--dir DIR] [--mib 64] [--block 4096] [--rounds 5]

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { codecFor, type ZFileAlgorithm } from '../src/format/zfile/codec.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: join(process.env.DADI_BENCH_DIR ?? '/var/tmp/dadi-bench', 'rootfs-python') },
    mib: { type: 'string', default: '64' },
    block: { type: 'string', default: '4096' },
    rounds: { type: 'string', default: '5' },
  },
});
const limit = Number(values.mib) << 20;
const blockSize = Number(values.block);
const rounds = Number(values.rounds);
if (!(limit > 0 && blockSize >= 512 && rounds >= 1 && rounds <= 100)) throw new Error('bad --mib/--block/--rounds');

/** Regular files under `dir`, in walk order, up to `limit` bytes in all. */
async function content(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  const names = (await readdir(dir, { recursive: true })).sort();
  for (const n of names) {
    if (total >= limit) break;
    const p = join(dir, n);
    const s = await stat(p).catch(() => undefined);
    if (!s?.isFile() || s.size === 0) continue;
    const b = await readFile(p);
    parts.push(b);
    total += b.length;
  }
  if (!total) throw new Error(`no files under ${dir} (build it: node --import tsx bench/coldstart/image.ts)`);
  return Buffer.concat(parts).subarray(0, Math.min(total, limit));
}

const data = await content(values.dir);
const blocks = Math.floor(data.length / blockSize);
const rows: string[] = [];
const results: Record<string, { compressed: number; bestMs: number }> = {};
const encoded: Record<string, Buffer[]> = {};
for (const algo of ['lz4', 'zstd'] as ZFileAlgorithm[]) {
  const c = codecFor(algo);
  const dst = Buffer.alloc(c.bound(blockSize));
  const out: Buffer[] = [];
  let compressed = 0;
  for (let i = 0; i < blocks; i++) {
    const n = c.compress(data.subarray(i * blockSize, (i + 1) * blockSize), dst);
    // As the writer does: a block that does not shrink is still stored compressed (ZFile has no raw blocks).
    out.push(Buffer.from(dst.subarray(0, n)));
    compressed += n;
  }
  encoded[algo] = out;
  results[algo] = { compressed, bestMs: Number.POSITIVE_INFINITY };
}
const plain = Buffer.alloc(blockSize);
for (let r = 0; r < rounds; r++) {
  for (const algo of (r % 2 ? ['zstd', 'lz4'] : ['lz4', 'zstd']) as ZFileAlgorithm[]) {
    const c = codecFor(algo);
    const t0 = process.cpuUsage();
    for (const b of encoded[algo]!) if (c.decompress(b, plain) !== blockSize) throw new Error(`${algo}: bad block`);
    const u = process.cpuUsage(t0);
    results[algo]!.bestMs = Math.min(results[algo]!.bestMs, (u.user + u.system) / 1000);
  }
}
const mb = (blocks * blockSize) / 1e6;
rows.push(
  `${mb.toFixed(1)} MB of ${values.dir} in ${blocks} blocks of ${blockSize} B, best CPU time of ${rounds} rounds`,
);
rows.push('| codec | compressed | ratio | decode CPU | per block | per MB |');
rows.push('|---|---|---|---|---|---|');
for (const [algo, r] of Object.entries(results)) {
  rows.push(
    `| ${algo} | ${(r.compressed / 1e6).toFixed(2)} MB | ${(r.compressed / (blocks * blockSize)).toFixed(3)} | ` +
      `${r.bestMs.toFixed(0)} ms | ${((r.bestMs * 1000) / blocks).toFixed(2)} µs | ${(r.bestMs / mb).toFixed(2)} ms |`,
  );
}
console.log(rows.join('\n'));
