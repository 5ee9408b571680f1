// How fast is an end-to-end conversion (create + mkfs + apply + commit -z lz4 -t + digest), and
// how big is the result? Source: a ~100 MB tar of local dirs as a one-layer OCI layout, plus a
// second image with a deletions-only layer on top. Baselines in the same run: `gzip -c` of the
// same tar (what producing the ordinary image layer costs) and `tar -xf` into a tmp dir.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertImage } from '../src/convert/index.js';
import { writeImageLayout } from '../test/integration/convert-helpers.js';
import { report } from './report.js';

const dirs = ['/usr/lib/python3.11', '/usr/share/zoneinfo', '/etc', '/usr/sbin', '/usr/share/perl'].filter(existsSync);
const tmp = await mkdtemp(join(tmpdir(), 'dadi-bench-convert-'));
const time = (fn: () => void): number => {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
};
try {
  const tar = join(tmp, 'layer.tar');
  execFileSync('tar', ['--numeric-owner', '-cf', tar, ...dirs], { stdio: ['ignore', 'ignore', 'ignore'] });
  const size = (await stat(tar)).size;
  const bytes = await readFile(tar);
  // Deletions-only layer: whiteouts for 200 files spread over the tree.
  const names = execFileSync('tar', ['-tf', tar], { maxBuffer: 1 << 28 })
    .toString()
    .split('\n')
    .filter((n) => n && !n.endsWith('/'));
  const del = join(tmp, 'del');
  const step = Math.max(1, Math.floor(names.length / 200));
  const wh: string[] = [];
  for (let i = 0; i < names.length && wh.length < 200; i += step) {
    const n = names[i]!;
    const slash = n.lastIndexOf('/');
    wh.push(`${n.slice(0, slash + 1)}.wh.${n.slice(slash + 1)}`);
  }
  execFileSync('sh', [
    '-c',
    `mkdir -p ${del} && cd ${del} && for f in "$@"; do mkdir -p "$(dirname "$f")"; : > "$f"; done`,
    'sh',
    ...wh,
  ]);
  const delTar = join(tmp, 'del.tar');
  execFileSync('tar', ['--numeric-owner', '-cf', delTar, '-C', del, '.']);
  const delBytes = await readFile(delTar);

  const src = join(tmp, 'src');
  await writeImageLayout(src, [bytes], 'one');
  const src2 = join(tmp, 'src2');
  await writeImageLayout(src2, [bytes, delBytes], 'two');

  const runs: { seconds: number; blob: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await convertImage(`oci:${src}:one`, `oci:${join(tmp, `out${i}`)}:x`, {
      workDir: join(tmp, `work${i}`),
      reuse: false,
    });
    const l = r.layers[0]!;
    runs.push({ seconds: l.seconds.apply + l.seconds.commit, blob: l.size });
    console.error(
      `run ${i}: apply ${l.seconds.apply.toFixed(2)} s, commit ${l.seconds.commit.toFixed(2)} s, total ${r.seconds.toFixed(2)} s`,
    );
    await rm(join(tmp, `out${i}`), { recursive: true, force: true });
    await rm(join(tmp, `work${i}`), { recursive: true, force: true });
  }
  const two = await convertImage(`oci:${src2}:two`, `oci:${join(tmp, 'out-two')}:x`, {
    workDir: join(tmp, 'work-two'),
  });

  const gzSeconds = Math.min(
    ...[0, 1, 2].map(() => time(() => execFileSync('sh', ['-c', `gzip -c ${tar} > ${tar}.gz`]))),
  );
  const gzSize = (await stat(`${tar}.gz`)).size;
  const tarSeconds = Math.min(
    ...[0, 1, 2].map((i) => {
      const out = join(tmp, `x${i}`);
      execFileSync('mkdir', [out]);
      const t = time(() => execFileSync('tar', ['-xf', tar, '-C', out]));
      execFileSync('rm', ['-rf', out]);
      return t;
    }),
  );
  const best = Math.min(...runs.map((r) => r.seconds));
  const mb = size / 1e6;
  const delLayer = two.layers[1]!;
  report('convert', `convert: one ~${mb.toFixed(0)} MB tar layer (create + mkfs + apply + commit -z lz4 -t)`, [
    {
      case: `convert ${mb.toFixed(0)} MB tar`,
      unit: 'MB/s',
      value: mb / best,
      baseline: mb / gzSeconds,
      baselineName: 'gzip -c of the same tar',
      extra: { seconds: best, gzipSeconds: gzSeconds, tarXfSeconds: tarSeconds, referenceSeconds: '0.80–1.06' },
    },
    { case: 'convert vs tar -xf', unit: 'MB/s', value: mb / best, baseline: mb / tarSeconds, baselineName: 'tar -xf' },
    {
      case: 'converted layer / gzip source',
      unit: '×',
      value: runs[0]!.blob / gzSize,
      extra: { convertedBytes: runs[0]!.blob, gzipBytes: gzSize, tarBytes: size },
    },
    {
      case: `deletions-only layer (${wh.length} whiteouts, ${delBytes.length} B tar)`,
      unit: 'KB',
      value: delLayer.size / 1000,
      extra: { seconds: delLayer.seconds.apply + delLayer.seconds.commit, goal: '< 100 KB' },
    },
  ]);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
