// Registry-to-registry conversion throughput: five Debian-based images (minbase; + python3; + perl;
// + a 1 GiB data layer; + 20 small layers) pushed to a local docker-registry, then converted in
// one `dadi convert SRC=DST …` run with --jobs 1 and one with --jobs 2, in 3 alternated rounds
// (each run with a fresh work folder and fresh target repositories, so every run converts every
// layer once, the shared base included).
// Reports images per minute → docs/bench/convert-throughput.{json,md}. Root (debootstrap, chroot).
//
//   npm run bench:convert-throughput            # images cached in /var/tmp/dadi-bench-throughput

import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { startRegistry } from '../test/integration/registry-harness.js';
import { buildImage, LAYOUT as COLDSTART_LAYOUT, REPO_ROOT } from './coldstart/image.js';
import { log, sh } from './coldstart/util.js';

const WORK = process.env.DADI_BENCH_THROUGHPUT_DIR ?? '/var/tmp/dadi-bench-throughput';
const LAYOUT = join(WORK, 'oci');
const IMAGES = ['debian', 'python', 'perl', 'data1g', 'many-layers'] as const;
const DATA_BYTES = 1024 ** 3;
const SMALL_LAYERS = 20;
const ROUNDS = 3;

const bash = (script: string) => sh('sh', ['-c', script]);

/** 1 GiB that compresses about 2:1: each 64 KiB, half fresh random bytes and half zeros. */
async function writeData(path: string): Promise<void> {
  const out = createWriteStream(path);
  const zeros = Buffer.alloc(32 << 10);
  for (let i = 0; i < DATA_BYTES / (64 << 10); i++) {
    const random = out.write(randomBytes(32 << 10));
    if (!out.write(zeros) || !random) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}

/** Derive `tag` from `debian` by changing an unpacked bundle with `change(rootfs)`. */
async function derive(tag: string, change: (rootfs: string) => Promise<void>): Promise<void> {
  const bundle = join(WORK, `bundle-${tag}`);
  await rm(bundle, { recursive: true, force: true });
  await sh('umoci', ['unpack', '--image', `${LAYOUT}:debian`, bundle]);
  await change(join(bundle, 'rootfs'));
  await sh('umoci', ['repack', '--image', `${LAYOUT}:${tag}`, bundle]);
  await rm(bundle, { recursive: true, force: true });
}

async function buildImages(): Promise<void> {
  const done = join(WORK, 'images.done');
  if (existsSync(done)) return;
  await buildImage(); // the cold-start bench's `base` (minbase) and `app` (+ python3)
  await rm(LAYOUT, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  await sh('umoci', ['init', '--layout', LAYOUT]);
  await sh('skopeo', ['copy', `oci:${COLDSTART_LAYOUT}:base`, `oci:${LAYOUT}:debian`]);
  await sh('skopeo', ['copy', `oci:${COLDSTART_LAYOUT}:app`, `oci:${LAYOUT}:python`]);
  log('perl: apt-get install perl in a chroot');
  await derive('perl', (r) =>
    bash(
      `cp /etc/resolv.conf '${r}/etc/resolv.conf' && mount -t proc proc '${r}/proc' && ` +
        `(chroot '${r}' sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends perl'; rc=$?; umount '${r}/proc'; exit $rc) && ` +
        `rm -rf '${r}/var/lib/apt/lists/'* '${r}/var/cache/apt/'*.bin`,
    ).then(() => {}),
  );
  log('data1g: a 1 GiB data layer');
  await derive('data1g', async (r) => {
    await mkdir(join(r, 'data'), { recursive: true });
    await writeData(join(r, 'data', 'blob.bin'));
  });
  log(`many-layers: ${SMALL_LAYERS} small layers`);
  await sh('skopeo', ['copy', `oci:${LAYOUT}:debian`, `oci:${LAYOUT}:many-layers`]);
  for (let i = 0; i < SMALL_LAYERS; i++) {
    const dir = join(WORK, 'small', String(i));
    await mkdir(join(dir, 'srv', `l${i}`), { recursive: true });
    for (let f = 0; f < 50; f++) await writeFile(join(dir, 'srv', `l${i}`, `f${f}`), randomBytes(2048).toString('hex'));
    await sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', dir, '-cf', `${dir}.tar`, 'srv']);
    await sh('umoci', ['raw', 'add-layer', '--image', `${LAYOUT}:many-layers`, `${dir}.tar`]);
  }
  await rm(join(WORK, 'small'), { recursive: true, force: true });
  await writeFile(done, '');
}

interface Run {
  round: number;
  jobs: number;
  seconds: number;
  images_per_minute: number;
  failed: number;
  per_image_seconds: Record<string, number>;
}

/** The median wall of a set of runs, and its images per minute. */
function medianRun(runs: Run[]): { seconds: number; images_per_minute: number } {
  const s = runs.map((r) => r.seconds).sort((a, b) => a - b);
  const seconds = s[Math.floor(s.length / 2)]!;
  return { seconds, images_per_minute: Number(((IMAGES.length * 60) / seconds).toFixed(2)) };
}

async function main(): Promise<void> {
  await buildImages();
  const reg = await startRegistry({ auth: 'none' });
  const runs: Run[] = [];
  try {
    for (const name of IMAGES)
      await sh('skopeo', [
        'copy',
        '--dest-tls-verify=false',
        `oci:${LAYOUT}:${name}`,
        `docker://${reg.host}/src-${name}:v1`,
      ]);
    // Rounds alternate which --jobs goes first (the machine is shared; load drifts).
    for (let round = 0; round < ROUNDS; round++) {
      for (const jobs of round % 2 === 0 ? [1, 2] : [2, 1]) {
        const work = join(WORK, `convert-work-${jobs}`);
        await rm(work, { recursive: true, force: true });
        const pairs = IMAGES.map((n) => `${reg.host}/src-${n}:v1=${reg.host}/obd-r${round}-j${jobs}-${n}:v1`);
        log(`round ${round + 1}/${ROUNDS}: convert ${IMAGES.length} images, --jobs ${jobs}`);
        const t0 = performance.now();
        const r = await sh(
          'node',
          [
            '--import',
            'tsx',
            join(REPO_ROOT, 'src/cli/entry.ts'),
            'convert',
            '--json',
            '--jobs',
            String(jobs),
            '--workdir',
            work,
            ...pairs,
          ],
          { allowFail: true },
        );
        const seconds = (performance.now() - t0) / 1000;
        const out = JSON.parse(r.stdout) as {
          failed: number;
          images: Array<{ source: string; ok: boolean; result?: { seconds: number }; error?: string }>;
        };
        for (const i of out.images) if (!i.ok) log(`  ${i.source}: ${i.error}`);
        runs.push({
          round: round + 1,
          jobs,
          seconds: Number(seconds.toFixed(2)),
          images_per_minute: Number(((IMAGES.length * 60) / seconds).toFixed(2)),
          failed: out.failed,
          per_image_seconds: Object.fromEntries(
            out.images.map((i, k) => [IMAGES[k]!, Number((i.result?.seconds ?? Number.NaN).toFixed(2))]),
          ),
        });
        log(`  ${seconds.toFixed(1)} s, ${runs.at(-1)!.images_per_minute} images/min`);
        await rm(work, { recursive: true, force: true });
      }
    }
  } finally {
    await reg.stop();
  }
  const result = {
    images: IMAGES,
    machine: { cpus: cpus().length, memory_gib: Math.round(totalmem() / 1024 ** 3) },
    date: new Date().toISOString(),
    rounds: ROUNDS,
    median: Object.fromEntries([1, 2].map((j) => [`jobs_${j}`, medianRun(runs.filter((r) => r.jobs === j))])),
    runs,
  };
  const docs = join(REPO_ROOT, 'docs', 'bench');
  await mkdir(docs, { recursive: true });
  await writeFile(join(docs, 'convert-throughput.json'), `${JSON.stringify(result, null, 2)}\n`);
  const rows = runs.map(
    (r) =>
      `| ${r.round} | ${r.jobs} | ${r.seconds} | ${r.images_per_minute} | ${r.failed} | ${IMAGES.map((n) => r.per_image_seconds[n]).join(' / ')} |`,
  );
  await writeFile(
    join(docs, 'convert-throughput.md'),
    [
      '# Registry-to-registry conversion throughput',
      '',
      `\`npm run bench:convert-throughput\` (${result.date}, ${result.machine.cpus} CPUs, ${result.machine.memory_gib} GiB): ` +
        `one \`dadi convert SRC=DST …\` run over ${IMAGES.length} images (${IMAGES.join(', ')}) from and to a local docker-registry; ` +
        'fresh work folder and target repositories per run, so every layer converts once per run. All five share the Debian base ' +
        'layer, so the first image converts alone (the others wait to reuse its layer) and the other four then run --jobs at a time. ' +
        'The data layer is 1 GiB, half random (550 MB gzip). Rounds alternate which --jobs goes first; other work shared the machine.',
      '',
      `Median of ${ROUNDS} rounds: --jobs 1 ${result.median.jobs_1!.images_per_minute} images/min ` +
        `(${result.median.jobs_1!.seconds} s), --jobs 2 ${result.median.jobs_2!.images_per_minute} images/min (${result.median.jobs_2!.seconds} s).`,
      '',
      `| round | --jobs | wall s | images/min | failed | per-image s (${IMAGES.join(' / ')}) |`,
      '|---|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n'),
  );
}

await main();
