// How long does `dadi run` of /bin/true take (warm: daemon running, layer blobs in the page cache)?
// Candidates: runContainer in block mode (per-container writable block layer) and overlay mode, and
// the daemon's mount+umount alone. Baseline in the same run: `runc run` of the same rootfs from a
// plain directory with the same bundle. Cold rows drop the page caches before each run. Root only.
//
//   node --import tsx bench/runtime-run.ts [--runs 7]

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runProgram } from '../src/export/index.js';
import {
  buildSpec,
  DaemonClient,
  removeCgroup,
  runContainer,
  runcDelete,
  runcRun,
  writeBundle,
} from '../src/runtime/index.js';
import {
  buildRootfs,
  emergencyCleanup,
  imageToLayer,
  leftovers,
  makeExt4,
} from '../test/integration/runtime-helpers.js';
import { type BenchRow, report } from './report.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const runs = Number(values.runs);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(n: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  await fn(-1); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push((performance.now() - t0) / 1000);
  }
  return out;
}

const root = await mkdtemp(join(tmpdir(), 'dadi-bench-rt-'));
const state = join(root, 'state');
const names: string[] = [];
const rows: BenchRow[] = [];
try {
  const src = join(root, 'rootfs-src');
  await buildRootfs(src);
  await makeExt4(src, join(root, 'base.img'));
  const layer = join(root, 'base.layer');
  await imageToLayer(join(root, 'base.img'), layer);
  const client = await DaemonClient.connect({ stateDir: state });

  // Baseline: runc run from a plain directory, same spec.
  const bundle = join(root, 'plain-bundle');
  await writeBundle(bundle, await buildSpec({ rootfs: src, cmd: ['/bin/true'], cgroupsPath: '/dadi/bench-plain' }));
  names.push('bench-plain');
  const plain = await timed(runs, async () => {
    const code = await runcRun({ root: join(state, 'runc'), bundle, id: 'bench-plain' });
    await runcDelete(join(state, 'runc'), 'bench-plain');
    await removeCgroup('/dadi/bench-plain');
    if (code !== 0) throw new Error(`runc run exited ${code}`);
  });

  const run = (mode: 'block' | 'overlay') =>
    timed(runs, async (i) => {
      const name = `bench-${mode}-${i + 1}`;
      names.push(name);
      const r = await runContainer({
        layers: [layer],
        cmd: ['/bin/true'],
        name,
        rm: true,
        rootfsMode: mode,
        stateDir: state,
      });
      if (r.exitCode !== 0) throw new Error(`${name} exited ${r.exitCode}`);
    });
  const block = await run('block');
  const overlay = await run('overlay');

  // Cold: page caches dropped before each run (the layer blob and the plain rootfs are re-read from disk).
  const dropCaches = async () => {
    const r = await runProgram('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    if (r.code !== 0) throw new Error(`drop_caches: ${r.stderr}`);
  };
  const coldRuns = Math.max(3, Math.floor(runs / 2));
  const plainCold: number[] = [];
  const blockCold: number[] = [];
  for (let i = 0; i < coldRuns; i++) {
    await dropCaches();
    let t0 = performance.now();
    const code = await runcRun({ root: join(state, 'runc'), bundle, id: 'bench-plain' });
    plainCold.push((performance.now() - t0) / 1000);
    await runcDelete(join(state, 'runc'), 'bench-plain');
    await removeCgroup('/dadi/bench-plain');
    if (code !== 0) throw new Error(`runc run exited ${code}`);
    await dropCaches();
    const name = `bench-cold-${i}`;
    names.push(name);
    t0 = performance.now();
    const r = await runContainer({ layers: [layer], cmd: ['/bin/true'], name, rm: true, stateDir: state });
    blockCold.push((performance.now() - t0) / 1000);
    if (r.exitCode !== 0) throw new Error(`${name} exited ${r.exitCode}`);
  }

  const mnt = join(root, 'mnt/x/rootfs');
  await mkdir(mnt, { recursive: true });
  const mountOnly = await timed(runs, async () => {
    await client.mount({ layers: [layer], target: mnt, rw: true });
    await client.umount(mnt);
  });

  const base = median(plain);
  const extra = (xs: number[]) => ({ runs: xs.length, min: Math.min(...xs), max: Math.max(...xs) });
  rows.push(
    {
      case: 'runContainer /bin/true, block rw layer (warm)',
      unit: 's',
      value: median(block),
      baseline: base,
      baselineName: 'runc run, plain dir',
      extra: extra(block),
    },
    {
      case: 'runContainer /bin/true, overlay (warm)',
      unit: 's',
      value: median(overlay),
      baseline: base,
      baselineName: 'runc run, plain dir',
      extra: extra(overlay),
    },
    {
      case: 'runContainer /bin/true, block rw layer (cold page cache, daemon up)',
      unit: 's',
      value: median(blockCold),
      baseline: median(plainCold),
      baselineName: 'runc run, plain dir, cold page cache',
      extra: extra(blockCold),
    },
    { case: 'daemon mount rw + umount only', unit: 's', value: median(mountOnly), extra: extra(mountOnly) },
    { case: 'runc run /bin/true, plain dir', unit: 's', value: base, extra: extra(plain) },
  );
  await client.shutdown();
} finally {
  await emergencyCleanup(state, names);
  const left = await leftovers(state, names);
  if (left.length) console.error(`left in place (${root}): ${left.join('; ')}`);
  else await rm(root, { recursive: true, force: true });
}
report('runtime-run', 'dadi run of /bin/true (warm) vs runc run from a plain directory', rows);
