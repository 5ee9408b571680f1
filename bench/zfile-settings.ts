// Which ZFile settings for image layers: LZ4 or zstd, 4 KiB or larger blocks (all readable by the
// reference). For each layer of the coldstart image (bench/coldstart/image.ts, converted with
// today's settings), the raw LSMT layer is recompressed with each setting; measured: size against
// the gzip source layer, compression time, and the time to decode the whole layer.
// Cold-start bytes per setting need images converted with it (convert pins one setting); not here.
//
// Usage: node --import tsx bench/zfile-settings.ts [algo:KiB ...]   (default: all six settings;
// needs the built coldstart image in $DADI_BENCH_DIR). The first setting is the baseline.

import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runDadi } from '../test/cli.js';
import { type BenchRow, report } from './report.js';

const WORK = process.env.DADI_BENCH_DIR ?? '/var/tmp/dadi-bench';
const ALL = [
  { algorithm: 'lz4', bs: 4 },
  { algorithm: 'lz4', bs: 16 },
  { algorithm: 'lz4', bs: 64 },
  { algorithm: 'zstd', bs: 4 },
  { algorithm: 'zstd', bs: 16 },
  { algorithm: 'zstd', bs: 64 },
];
const picked = process.argv.slice(2).map((a) => {
  const [algorithm, bs] = a.split(':');
  return { algorithm: algorithm!, bs: Number(bs) };
});
const SETTINGS = picked.length ? picked : ALL;

async function dadi(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  const t = performance.now();
  const r = await runDadi(args, { env });
  if (r.code !== 0) throw new Error(`dadi ${args.join(' ')}: ${r.stderr}`);
  return (performance.now() - t) / 1000;
}

const root = await mkdtemp('/var/tmp/dadi-bench-zfile-');
try {
  const layout = join(WORK, 'oci');
  const out = join(root, 'dadi-oci');
  await dadi(['convert', '-q', '--no-reuse', `oci:${layout}:app`, `oci:${out}:dadi`], {
    DADI_CACHE_DIR: join(root, 'cache'),
    HOME: root,
  });
  const manifestOf = async (dir: string, tag: string) => {
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    const m = index.manifests.find(
      (x: { annotations?: Record<string, string> }) => x.annotations?.['org.opencontainers.image.ref.name'] === tag,
    );
    return JSON.parse(await readFile(join(dir, 'blobs', ...m.digest.split(':')), 'utf8')) as {
      layers: { digest: string; size: number }[];
    };
  };
  const gzipBytes = (await manifestOf(layout, 'app')).layers.reduce((a, l) => a + l.size, 0);
  const layers = (await manifestOf(out, 'dadi')).layers;
  const raws: string[] = [];
  for (const [i, l] of layers.entries()) {
    const raw = join(root, `layer${i}.lsmt`);
    await dadi(['zfile', 'decompress', join(out, 'blobs', ...l.digest.split(':')), raw]);
    raws.push(raw);
  }
  const rows: BenchRow[] = [];
  let base: { size: number; decodeS: number } | undefined;
  for (const s of SETTINGS) {
    let size = 0;
    let compressS = 0;
    let decodeS = 0;
    for (const [i, raw] of raws.entries()) {
      const z = join(root, `layer${i}.${s.algorithm}.${s.bs}k.tar`);
      compressS += await dadi(['zfile', 'compress', '-t', '--algorithm', s.algorithm, '--bs', String(s.bs), raw, z]);
      size += (await stat(z)).size;
      decodeS += await dadi(['zfile', 'decompress', z, join(root, 'check.lsmt')]);
      await rm(z);
    }
    base ??= { size, decodeS };
    const name = `${s.algorithm} ${s.bs} KiB`;
    console.error(
      `${name}: ${(size / 1e6).toFixed(1)} MB (${(size / gzipBytes).toFixed(2)}× gzip), compress ${compressS.toFixed(1)} s, decode ${decodeS.toFixed(1)} s`,
    );
    rows.push({
      case: `${name}: image size / gzip source`,
      unit: '×',
      value: Math.round((1000 * size) / gzipBytes) / 1000,
      extra: { bytes: size, gzipBytes, compressS, decodeS },
    });
    rows.push({
      case: `${name}: decode whole image (CLI, incl. start)`,
      unit: 's',
      value: Math.round(decodeS * 100) / 100,
      baseline: Math.round(base.decodeS * 100) / 100,
      baselineName: `${SETTINGS[0]!.algorithm} ${SETTINGS[0]!.bs} KiB`,
    });
  }
  report('zfile-settings', 'ZFile settings: image size and decode time (coldstart image)', rows);
} finally {
  await rm(root, { recursive: true, force: true });
}
