// Background whole-layer pull (issue #11 item 4): (1) how long the converted Debian minbase takes
// to pull wholly into an empty block cache on a loopback registry, at the default rate and
// unthrottled; (2) what a pull running from the first moment (delay 0, the worst case) does to a
// foreground cold start, `dadi run --rm IMAGE cat /etc/os-release` with a fresh daemon and an empty
// cache each run, against the same start with the pull off (the baseline), alternating.
//
// The pull's settings come from the DADI_PULL_* variables, as the daemon's do (delay forced to 0).
//
// Usage (root): node --import tsx bench/background-pull.ts [runs=5]   (runs=0: only the whole-image pull)

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockCache } from '../src/cache/cache.js';
import { layerPullConfigOf, parseConfig } from '../src/config/index.js';
import { LayerPull } from '../src/prefetch/layer-pull.js';
import { parseReference, RegistryClient, RemoteBlob } from '../src/registry/index.js';
import { DaemonClient } from '../src/runtime/index.js';
import { runDadi } from '../test/cli.js';
import { debianLayout } from '../test/integration/debian-image.js';
import { startRegistry } from '../test/integration/registry-harness.js';
import { type BenchRow, report } from './report.js';

const runs = Number(process.argv[2] ?? 5);
const config = {
  ...layerPullConfigOf(parseConfig(undefined, undefined, { ...process.env, DADI_PULL: 'on' }).config),
  delay: 0,
  delayExtra: 0,
};
const round = (x: number) => Math.round(x * 1000) / 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const root = await mkdtemp('/var/tmp/dadi-bench-bgpull-');
const reg = await startRegistry({ auth: 'none' });
try {
  const ref = `${reg.host}/debian/min:dadi`;
  const conv = await runDadi(['convert', '-q', `oci:${await debianLayout()}:v1`, ref], {
    env: { DADI_CACHE_DIR: join(root, 'convert-cache'), DADI_STATE: join(root, 'convert-state'), DADI_PULL: 'off' },
  });
  if (conv.code !== 0) throw new Error(`dadi convert failed: ${conv.stderr}`);
  const rows: BenchRow[] = [];

  // (1) The whole image into an empty cache.
  const client = new RegistryClient();
  const r = parseReference(ref);
  const { manifest } = await client.resolveImage(r);
  const totalBytes = manifest.layers.reduce((a, l) => a + l.size, 0);
  const whole: Record<string, number> = {};
  // A first unthrottled pass only warms the registry's files in the page cache, for a fair comparison.
  for (const [name, maxMBps] of [
    ['warm-up', 1e6],
    ['configured rate', config.maxMBps],
    ['unthrottled', 1e6],
  ] as const) {
    const cache = await BlockCache.open(join(root, `pull-cache-${name.replace(/ /g, '-')}`), {
      diskFloor: 0,
    });
    const blobs = await Promise.all(
      manifest.layers.map(async (l) =>
        cache.open(l.digest, await RemoteBlob.open(client, r, l.digest, { size: l.size })),
      ),
    );
    const t0 = performance.now();
    const status = await new LayerPull(
      blobs.map((b, i) => ({ name: manifest.layers[i]!.digest, digest: b.key, blob: b })),
      { ...config, maxMBps },
    ).done;
    const s = (performance.now() - t0) / 1000;
    if (status.some((x) => x.state !== 'verified')) throw new Error(`pull failed: ${JSON.stringify(status)}`);
    whole[name] = s;
    console.error(`whole image (${(totalBytes / 1e6).toFixed(1)} MB), ${name}: ${s.toFixed(2)} s`);
    for (const b of blobs) await b.close();
    await cache.close();
  }
  await client.close();
  rows.push({
    case: `whole Debian minbase pull (${(totalBytes / 1e6).toFixed(1)} MB), ${config.maxMBps} MB/s, ${config.chunkSize / 1024} KiB chunks × ${config.concurrency}`,
    unit: 's',
    value: round(whole['configured rate']!),
    baseline: round(whole.unthrottled!),
    baselineName: 'unthrottled',
    extra: { bytes: totalBytes, MBps: round(totalBytes / 1e6 / whole['configured rate']!) },
  });

  if (runs > 0) await coldStarts(rows, ref);
  report('background-pull', `Background whole-layer pull (loopback registry, median of ${runs})`, rows);
} finally {
  await reg.stop();
  await rm(root, { recursive: true, force: true });
}

async function coldStarts(rows: BenchRow[], ref: string): Promise<void> {
  // (2) A foreground cold start with and without a pull from the first moment.
  const samples: Record<'off' | 'on', number[]> = { off: [], on: [] };
  for (let i = 0; i < runs; i++) {
    for (const mode of ['off', 'on'] as const) {
      const dir = await mkdtemp(join(root, `run-${mode}-`));
      const env = {
        DADI_STATE: join(dir, 'state'),
        DADI_CACHE_DIR: join(dir, 'cache'),
        DADI_PULL: mode,
        DADI_PULL_DELAY: '0',
        DADI_PULL_DELAY_EXTRA: '0',
      };
      // Start the daemon first so its start-up is not part of the time.
      const warm = await runDadi(['ps'], { env });
      if (warm.code !== 0) throw new Error(`dadi ps: ${warm.stderr}`);
      const t0 = performance.now();
      const run = await runDadi(['run', '--rm', ref, '--', '/bin/cat', '/etc/os-release'], { env });
      const s = (performance.now() - t0) / 1000;
      if (run.code !== 0 || !run.stdout.includes('bookworm')) throw new Error(`dadi run (${mode}): ${run.stderr}`);
      samples[mode].push(s);
      console.error(`cold start, pull ${mode}, run ${i + 1}: ${s.toFixed(3)} s`);
      const d = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false });
      await d.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  }
  rows.push({
    case: 'cold start `dadi run --rm debian cat /etc/os-release`, pull from the first moment',
    unit: 's',
    value: round(median(samples.on)),
    baseline: round(median(samples.off)),
    baselineName: 'pull off',
    extra: { on: samples.on.map(round), off: samples.off.map(round) },
  });
}
