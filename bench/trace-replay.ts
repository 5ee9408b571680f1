// What trace replay buys on a cold start: `dadi run --rm IMAGE -- cat /etc/os-release` on the
// converted Debian minbase (test/integration/debian-image.ts) from a loopback registry, every run
// with a fresh daemon and an empty block cache, alternating the image without a trace (baseline,
// --no-auto-trace) and the same image with the acceleration layer `dadi record-trace` made.
// Measured per run: wall time of `dadi run`, registry range requests and bytes (the daemon's
// cache counters, plus the one GET of the acceleration layer), and what the replay read.
//
// Usage (root): node --import tsx bench/trace-replay.ts [runs=5]

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DaemonClient } from '../src/runtime/client.js';
import { runDadi } from '../test/cli.js';
import { debianLayout } from '../test/integration/debian-image.js';
import { startRegistry } from '../test/integration/registry-harness.js';
import { type BenchRow, report } from './report.js';

const runs = Number(process.argv[2] ?? 5);
const CMD = ['cat', '/etc/os-release'];

interface Sample {
  seconds: number;
  requests: number;
  bytes: number;
  replay?: { reads: number; bytes: number; planned: number; cancelled: boolean };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const root = await mkdtemp('/var/tmp/dadi-bench-trace-');
  const reg = await startRegistry({ auth: 'none' });
  const state = join(root, 'state');
  let n = 0;
  const env = () => ({ DADI_STATE: state, DADI_CACHE_DIR: join(root, `cache-${n}`) });
  const stopDaemon = async () => {
    const c = await DaemonClient.connect({ stateDir: state, autoStart: false }).catch(() => undefined);
    await c?.shutdown();
  };
  try {
    const image = `${reg.host}/bench/debian:v1`;
    const traced = `${reg.host}/bench/debian:v1-trace`;
    const conv = await runDadi(['convert', '-q', `oci:${await debianLayout()}:v1`, image], { env: env() });
    if (conv.code !== 0) throw new Error(`convert: ${conv.stderr}`);
    const rec = await runDadi(['record-trace', '--time', '30', image, traced, '--', ...CMD], { env: env() });
    if (rec.code !== 0) throw new Error(`record-trace: ${rec.stderr}`);
    const inspect = JSON.parse((await runDadi(['inspect', '--json', traced], { env: env() })).stdout);
    const accelBytes: number = inspect.layers.at(-1).size;

    const cold = async (ref: string, flags: string[], accel: number): Promise<Sample> => {
      await stopDaemon();
      n++;
      // The daemon starts before the clock (as the measurements do), with an empty cache.
      process.env.DADI_CACHE_DIR = env().DADI_CACHE_DIR;
      await DaemonClient.connect({ stateDir: state });
      const t = performance.now();
      const r = await runDadi(['run', '--rm', '--trace-stats', ...flags, ref, '--', ...CMD], { env: env() });
      const seconds = (performance.now() - t) / 1000;
      if (r.code !== 0 || !r.stdout.includes('bookworm')) throw new Error(`run ${ref}: ${r.code} ${r.stderr}`);
      const c = await DaemonClient.connect({ stateDir: state, autoStart: false });
      const cache = (await c.cache()) as { fetches: number; fetchBytes: number } | null;
      const trace = JSON.parse(r.stderr.split('\n').find((l) => l.startsWith('{"trace"'))!).trace;
      return {
        seconds,
        requests: (cache?.fetches ?? 0) + (accel ? 1 : 0),
        bytes: (cache?.fetchBytes ?? 0) + accel,
        replay: trace?.replay,
      };
    };

    const without: Sample[] = [];
    const withTrace: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      without.push(await cold(image, ['--no-auto-trace'], 0));
      withTrace.push(await cold(traced, [], accelBytes));
    }
    const row = (what: string, unit: string, f: (s: Sample) => number): BenchRow => ({
      case: `cold dadi run, ${what}: with trace vs without`,
      unit,
      value: median(withTrace.map(f)),
      baseline: median(without.map(f)),
      baselineName: 'no trace',
    });
    report('trace-replay', 'Cold `dadi run -- cat /etc/os-release` on Debian minbase: trace replay vs none', [
      row('time', 's', (s) => s.seconds),
      row('registry requests', 'requests', (s) => s.requests),
      row('registry bytes', 'MB', (s) => s.bytes / 1e6),
      {
        case: 'replay reads done (of planned)',
        unit: 'reads',
        value: median(withTrace.map((s) => s.replay?.reads ?? 0)),
        extra: {
          planned: withTrace[0]?.replay?.planned,
          replayBytes: withTrace[0]?.replay?.bytes,
          cancelledRuns: withTrace.filter((s) => s.replay?.cancelled).length,
          accelerationLayerBytes: accelBytes,
          samples: { without, withTrace },
        },
      },
    ]);
  } finally {
    await stopDaemon();
    await reg.stop();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
