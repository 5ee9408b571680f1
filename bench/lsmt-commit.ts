// Question: how fast does an RW layer commit (compaction, spec §2.11) stream into a sink?
// Candidate: WritableLayer.commit of a ~1 GiB layer (1 MiB random-content writes, some overwrites).
// Baseline (same run): a plain read/write copy of the same data volume from the same data file.
// Sinks come from SINKS, so ZFile (-z) and tar (-t) outputs can be added as more factories.
// Usage: node --import tsx bench/lsmt-commit.ts [GiB] [sink names, comma-separated]

import { randomFillSync } from 'node:crypto';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink, type Sink } from '../src/blockfile/sink.js';
import { WritableLayer } from '../src/format/lsmt/writable.js';
import { openLayerOutput } from '../src/image/layer-output.js';
import { type BenchRow, report } from './report.js';

/** Output chains to measure (edit here); add e.g. `zfile-lz4: (p) => zfileSink(p, …)` here. */
const SINKS: Record<string, (path: string) => Promise<Sink>> = {
  plain: (path) => FileSink.create(path, { overwrite: true }),
  // `commit -z`: ZFile LZ4, 4 KiB blocks, CRC on (the data here is random: LZ4's worst case).
  'zfile-lz4': (path) => openLayerOutput(path, { zfile: { algorithm: 'lz4', blockSize: 4096 } }),
  // `commit -z -t`: what `dadi convert` uploads.
  'zfile-lz4-tar': (path) => openLayerOutput(path, { tar: true, zfile: { algorithm: 'lz4', blockSize: 4096 } }),
};

const GIB = Number(process.argv[2] ?? 1);
const names = (process.argv[3] ?? Object.keys(SINKS).join(',')).split(',');
const MIB = 1 << 20;
const ROUNDS = 2;

const dir = await mkdtemp(join(tmpdir(), 'dadi-bench-commit-'));
try {
  const writes = Math.round(GIB * 1024);
  const span = Math.round(writes * 1.25); // 1 MiB slots; ~20% of the writes overwrite earlier ones
  const rw = await WritableLayer.create(join(dir, 'l.data'), join(dir, 'l.index'), { virtualSize: span * MIB });
  const pool = randomFillSync(Buffer.alloc(64 * MIB));
  let x = 7;
  const t0 = performance.now();
  for (let i = 0; i < writes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const slot = (x >>> 8) % span;
    const from = ((x >>> 4) % 63) * MIB + (x % 8) * 4096;
    await rw.write(pool.subarray(from, from + MIB), slot * MIB);
  }
  await rw.flush();
  const writeSecs = (performance.now() - t0) / 1000;
  const liveBytes = rw.index.dataSectors() * 512;
  const dataFileBytes = rw.dataFile.size;

  // Baseline: copy the same volume with 4 MiB reads and writes.
  const copy = () =>
    timed(async () => {
      const src = await open(join(dir, 'l.data'), 'r');
      const dst = await open(join(dir, 'copy'), 'w');
      const buf = Buffer.allocUnsafe(4 * MIB);
      for (let p = 0; p < liveBytes; p += buf.length) {
        const n = Math.min(buf.length, liveBytes - p);
        await src.read(buf, 0, n, 4096 + p);
        await dst.write(buf, 0, n, p);
      }
      await src.close();
      await dst.close();
      await rm(join(dir, 'copy'));
    });

  const rows: BenchRow[] = [];
  for (const name of names) {
    const make = SINKS[name];
    if (!make) throw new Error(`unknown sink ${name} (have ${Object.keys(SINKS).join(', ')})`);
    const out = join(dir, `out-${name}`);
    let result: Awaited<ReturnType<WritableLayer['commit']>> | undefined;
    let outputBytes = 0;
    // Alternate baseline and candidate, best of ROUNDS each (the machine may be shared).
    let best = Number.POSITIVE_INFINITY;
    let bestCopy = Number.POSITIVE_INFINITY;
    for (let round = 0; round < ROUNDS; round++) {
      bestCopy = Math.min(bestCopy, await copy());
      best = Math.min(
        best,
        await timed(async () => {
          result = await rw.commit(await make(out));
        }),
      );
      outputBytes = (await stat(out)).size;
      await rm(out);
    }
    rows.push({
      case: `commit ${GIB} GiB layer → ${name}`,
      unit: 'MB/s',
      value: liveBytes / 1e6 / best,
      baseline: liveBytes / 1e6 / bestCopy,
      baselineName: 'plain file copy of the same volume',
      extra: {
        liveDataBytes: liveBytes,
        dataFileBytes,
        outputBytes,
        indexEntries: result?.entries,
        segmentsBefore: rw.index.size,
        seconds: best,
        writeMBs: (writes * MIB) / 1e6 / writeSecs,
      },
    });
  }
  await rw.close();
  report('lsmt-commit', 'LSMT commit throughput (RW layer → committed layer)', rows);
} finally {
  await rm(dir, { recursive: true, force: true });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}
