// How fast does our ext4 apply an OCI layer tar, and how big is the resulting layer diff?
// Candidate: mkfs (64 GiB) + applyLayer of a ~100 MB tar of local dirs into a sparse in-memory
// sink. Baseline in the same run: GNU `tar -xf` of the same tar into a tmp dir.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../src/ext4/apply.js';
import { Ext4 } from '../src/ext4/fs.js';
import { mkfs } from '../src/ext4/mkfs.js';
import { SparseMemoryFile } from '../src/ext4/sparse-file.js';
import { report } from './report.js';

const dirs = ['/usr/lib/python3.11', '/usr/share/zoneinfo', '/etc', '/usr/sbin', '/usr/share/perl'].filter(existsSync);
const tmp = await mkdtemp(join(tmpdir(), 'dadi-bench-ext4-'));
try {
  const tar = join(tmp, 'layer.tar');
  execFileSync('tar', ['--numeric-owner', '-cf', tar, ...dirs], { stdio: ['ignore', 'ignore', 'ignore'] });
  const size = (await stat(tar)).size;
  const bytes = await readFile(tar); // both sides read from memory / page cache

  const runs: { ours: number; layer: number; tar: number; entries: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const sink = new SparseMemoryFile(64 * 1024 ** 3);
    const t0 = performance.now();
    await mkfs(sink);
    const fs = await Ext4.open(sink);
    const st = await applyLayer(fs, Readable.from([bytes], { objectMode: false }));
    await fs.close();
    const ours = (performance.now() - t0) / 1000;
    const out = join(tmp, `x${i}`);
    execFileSync('mkdir', [out]);
    const t1 = performance.now();
    execFileSync('tar', ['-xf', tar, '-C', out]);
    execFileSync('sync', ['-f', out]);
    const base = (performance.now() - t1) / 1000;
    await rm(out, { recursive: true, force: true });
    runs.push({ ours, layer: sink.bytesWritten, tar: base, entries: st.entries });
  }
  const best = (k: 'ours' | 'tar') => Math.min(...runs.map((r) => r[k]));
  const mb = size / 1e6;
  report('ext4-apply', 'ext4: mkfs + apply a ~100 MB layer tar (64 GiB fs, in-memory sparse sink)', [
    {
      case: `apply ${mb.toFixed(0)} MB tar (${runs[0]!.entries} entries)`,
      unit: 'MB/s',
      value: mb / best('ours'),
      baseline: mb / best('tar'),
      baselineName: 'GNU tar -xf to tmpfs/disk',
      extra: { seconds: best('ours'), tarSeconds: best('tar'), layerBytesWritten: runs[0]!.layer, tarBytes: size },
    },
    {
      case: 'layer bytes written / tar bytes',
      unit: '×',
      value: runs[0]!.layer / size,
    },
  ]);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
