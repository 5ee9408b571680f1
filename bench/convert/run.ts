// Conversion wall time, dadi against the reference C++ tools, side by side in one run (issue #16).
// Images: the Debian test image of test/integration/debian-image.ts (debootstrap minbase + umoci,
// built once and cached): `v1` (one layer) and `v4` (base, packages, deletions, opaque dir). Each
// round converts every image with both contestants, alternating which goes first; medians of the
// rounds. dadi runs as its CLI (`dadi convert --no-reuse`, built once as installed: its bundle),
// the reference as its convertor's per-layer procedure (reference.ts). Both start from the gzip
// blobs in the layout and include decompressing them.
//
//   npm run bench:convert -- [--reference-bin DIR] [--runs 3] [--out docs/bench]
//
// Root only (debootstrap). Without the reference tools it still measures dadi and says why the
// ratio is missing. Writes docs/bench/convert.{json,md} (or --out).

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleStartCommands } from '../../scripts/bundle-cli.js';
import { debianLayout } from '../../test/integration/debian-image.js';
import { REPO_ROOT } from '../coldstart/image.js';
import { median, sh } from '../coldstart/util.js';
import {
  ensureServiceConfig,
  type LayoutImage,
  readLayoutImage,
  referenceMissing,
  runReference,
  timed,
} from './reference.js';
import { type ConvertBenchResult, type ImageResult, renderMarkdown } from './render.js';

const { values } = parseArgs({
  options: {
    'reference-bin': { type: 'string', default: process.env.DADI_REFERENCE_BIN ?? '/opt/overlaybd/bin' },
    runs: { type: 'string', default: '3' },
    out: { type: 'string', default: join(REPO_ROOT, 'docs/bench') },
    // An earlier build of the CLI (its cli/entry.js) run as a third contestant, e.g. to show what a change did.
    'baseline-cli': { type: 'string' },
    // Only these images (comma-separated keys, e.g. debian_1layer), for iterating on one of them.
    images: { type: 'string' },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error(`--runs ${values.runs}: want 1..20`);
const referenceBin = values['reference-bin']!;
const baselineCli = values['baseline-cli'];

const log = (msg: string) => process.stderr.write(`[convert ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const IMAGES = { debian_1layer: 'v1', debian_4layer: 'v4' } as const;
type ImageKey = keyof typeof IMAGES;
const ALL_KEYS = Object.keys(IMAGES) as ImageKey[];
const keys: ImageKey[] = values.images
  ? values.images.split(',').map((k) => {
      if (!(ALL_KEYS as string[]).includes(k))
        throw new Error(`--images ${values.images}: ${k} is not one of ${ALL_KEYS}`);
      return k as ImageKey;
    })
  : ALL_KEYS;

/**
 * Build the CLI once as `npm run build` does (what `npm ci` installs: tsc, then the bundles), so
 * dadi does not pay for tsx; the entry is the one bin/dadi runs for `dadi convert`.
 */
async function buildCli(): Promise<string> {
  const out = join(REPO_ROOT, 'bench/out/convert-dist');
  log('building the dadi CLI (tsc + bundles) for the benchmark');
  await rm(out, { recursive: true, force: true });
  await sh(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', out]);
  await bundleStartCommands({ root: out, runtimeRoot: out, outDir: out });
  const entry = join(out, 'cli/convert.bundle.js');
  if (!existsSync(entry)) throw new Error(`the build did not produce ${entry}`);
  return entry;
}

interface DadiRun {
  seconds: number;
  cpu: number;
  manifest: string;
  layerBytes: number[];
}

async function runDadi(cli: string, img: LayoutImage, work: string): Promise<DadiRun> {
  const out = join(work, 'out');
  const t0 = performance.now();
  const r = await timed(process.execPath, [
    cli,
    'convert',
    '--no-reuse',
    '--json',
    '--workdir',
    join(work, 'wd'),
    `oci:${img.layout}:${img.tag}`,
    `oci:${out}:converted`,
  ]);
  const seconds = (performance.now() - t0) / 1000;
  const res = JSON.parse(r.stdout) as { manifest: { digest: string }; layers: { size: number }[] };
  await rm(work, { recursive: true, force: true });
  return { seconds, cpu: r.cpu, manifest: res.manifest.digest, layerBytes: res.layers.map((l) => l.size) };
}

const spread = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs });

const tmp = await mkdtemp(join(tmpdir(), 'dadi-bench-convert-'));
const missing = referenceMissing(referenceBin);
if (missing) log(`reference tools unavailable: ${missing}; measuring dadi only`);
const restoreServiceConfig = missing ? async () => {} : await ensureServiceConfig();
try {
  const layout = await debianLayout();
  const cli = await buildCli();
  const images = Object.fromEntries(
    await Promise.all(keys.map(async (k) => [k, await readLayoutImage(layout, IMAGES[k])] as const)),
  ) as Record<ImageKey, LayoutImage>;
  type Samples = Record<ImageKey, Record<string, number[]>>;
  const samples = (): Samples => ({ debian_1layer: {}, debian_4layer: {} });
  const times = samples();
  const cpu = samples();
  const bytes = samples();
  const push = (m: Samples, key: ImageKey, who: string, x: number) => {
    m[key][who] ??= [];
    m[key][who].push(x);
  };
  const manifests: Record<ImageKey, Set<string>> = { debian_1layer: new Set(), debian_4layer: new Set() };
  const loadStart = loadavg();
  const loads: number[] = [];
  for (let round = 0; round < runs; round++) {
    for (const key of keys) {
      const img = images[key];
      const contestants = ['dadi', ...(missing ? [] : ['reference']), ...(baselineCli ? ['dadi_baseline'] : [])];
      // Rotate who goes first from round to round.
      const order = contestants.map((_, j) => contestants[(j + round) % contestants.length]!);
      for (const who of order) {
        const work = join(tmp, `${key}-${who}-${round}`);
        await mkdir(work, { recursive: true });
        loads.push(loadavg()[0]!);
        const r =
          who === 'reference'
            ? await runReference(img, referenceBin, work)
            : await runDadi(who === 'dadi' ? cli : baselineCli!, img, work);
        push(times, key, who, r.seconds);
        push(cpu, key, who, r.cpu);
        bytes[key][who] = r.layerBytes;
        if (who === 'dadi') manifests[key].add((r as DadiRun).manifest);
        log(`round ${round} ${key} ${who} ${r.seconds.toFixed(2)} s, ${r.cpu.toFixed(2)} CPU s`);
      }
    }
  }
  const result: ConvertBenchResult = {
    name: 'convert',
    title: 'Image conversion: dadi convert vs the reference C++ tools (same run)',
    date: new Date().toISOString(),
    node: process.version,
    machine: {
      cpus: availableParallelism(),
      loadavg_start: loadStart,
      loadavg_end: loadavg(),
      loadavg_1min_at_each_start: loads,
    },
    runs,
    reference_bin: missing ? null : referenceBin,
    unavailable: missing ? { reference: missing } : {},
    method: {
      rounds: `${runs} rounds; each converts every image with every contestant, rotating which goes first`,
      ...(baselineCli ? { dadi_baseline: `the same with an earlier build of the CLI: ${baselineCli}` } : {}),
      dadi: '`dadi convert --no-reuse --json oci:LAYOUT:TAG oci:OUT:TAG`, the CLI built as `npm run build` builds it (tsc, then the bundle bin/dadi runs for convert: dist/cli/convert.bundle.js), one process per conversion (wall time of the process)',
      reference:
        "the reference userspace convertor's steps per layer: gzip -dc + sha256sum of the blob (concurrently), overlaybd-create -s [--mkfs] 64, overlaybd-apply, overlaybd-commit -z --algorithm/--bs as dadi convert (DADI_LAYER_OUTPUT) -t --uuid [--parent-uuid], sha256sum of the commit file (wall time of all steps)",
    },
    images: {} as Record<string, ImageResult>,
  };
  for (const key of keys) {
    const img = images[key];
    const dadi = spread(times[key].dadi!);
    const reference = times[key].reference ? spread(times[key].reference) : undefined;
    const base = times[key].dadi_baseline;
    result.images[key] = {
      image: `${layout}:${img.tag}`,
      source_layers_gzip_bytes: img.layers.map((l) => l.size),
      dadi_s: dadi,
      reference_s: reference ?? null,
      ratio_vs_reference: reference ? dadi.median / reference.median : null,
      dadi_cpu_s: spread(cpu[key].dadi!),
      reference_cpu_s: reference ? spread(cpu[key].reference!) : null,
      ...(base
        ? {
            dadi_baseline_s: spread(base),
            dadi_baseline_cpu_s: spread(cpu[key].dadi_baseline!),
            baseline_ratio_vs_reference: reference ? spread(base).median / reference.median : null,
          }
        : {}),
      goal: 0.7,
      converted_bytes: {
        dadi: bytes[key].dadi!,
        reference: bytes[key].reference ?? null,
      },
      dadi_manifests: [...manifests[key]],
    };
  }
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, 'convert.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(values.out!, 'convert.md'), renderMarkdown(result));
  console.log(renderMarkdown(result));
  // The output layout of every dadi run is the same image: conversion is deterministic.
  for (const [k, m] of Object.entries(manifests)) if (m.size > 1) throw new Error(`${k}: dadi runs differ: ${[...m]}`);
} finally {
  await restoreServiceConfig();
  await rm(tmp, { recursive: true, force: true });
}
