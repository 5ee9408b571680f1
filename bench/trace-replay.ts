// What trace replay buys on a cold start: `dadi run --rm IMAGE -- cat /etc/os-release` on the
// converted Debian minbase (test/integration/debian-image.ts) from a loopback registry behind the
// cold-start bench's delay proxy (a round trip per link setting), every run with a fresh daemon and
// an empty block cache, alternating the image without a trace (baseline, --no-auto-trace) and the
// same image with the acceleration layer `dadi record-trace` made. Measured per run: wall time of
// `dadi run` (the CLI runs through tsx: add its start-up to both), HTTP requests and response bytes
// through the proxy (manifests, config and the acceleration layer included), what the replay read.
//
// Usage (root): node --import tsx bench/trace-replay.ts [runs=5] [rtt-ms=0,20]

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DaemonClient } from '../src/runtime/client.js';
import { runDadi } from '../test/cli.js';
import { debianLayout } from '../test/integration/debian-image.js';
import { freePort, startRegistry } from '../test/integration/registry-harness.js';
import { startProxy } from './coldstart/delay-proxy.js';
import { type BenchRow, report } from './report.js';

const runs = Number(process.argv[2] ?? 5);
const rtts = (process.argv[3] ?? '0,20').split(',').map(Number);
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
  const host = `127.0.0.1:${await freePort()}`;
  const proxy = startProxy(host, reg.host, 0);
  await proxy.listening;
  const state = join(root, 'state');
  let n = 0;
  const env = () => ({ DADI_STATE: state, DADI_CACHE_DIR: join(root, `cache-${n}`) });
  const stopDaemon = async () => {
    const c = await DaemonClient.connect({ stateDir: state, autoStart: false }).catch(() => undefined);
    await c?.shutdown();
  };
  try {
    const image = `${host}/bench/debian:v1`;
    const traced = `${host}/bench/debian:v1-trace`;
    const conv = await runDadi(['convert', '-q', `oci:${await debianLayout()}:v1`, image], { env: env() });
    if (conv.code !== 0) throw new Error(`convert: ${conv.stderr}`);
    const rec = await runDadi(['record-trace', '--time', '30', image, traced, '--', ...CMD], { env: env() });
    if (rec.code !== 0) throw new Error(`record-trace: ${rec.stderr}`);
    const inspect = JSON.parse((await runDadi(['inspect', '--json', traced], { env: env() })).stdout);
    const accelBytes: number = inspect.layers.at(-1).size;

    const cold = async (ref: string, flags: string[]): Promise<Sample> => {
      await stopDaemon();
      n++;
      // The daemon starts before the clock (as the measurements do), with an empty cache.
      process.env.DADI_CACHE_DIR = env().DADI_CACHE_DIR;
      await DaemonClient.connect({ stateDir: state });
      proxy.reset();
      const t = performance.now();
      const r = await runDadi(['run', '--rm', '--trace-stats', ...flags, ref, '--', ...CMD], { env: env() });
      const seconds = (performance.now() - t) / 1000;
      if (r.code !== 0 || !r.stdout.includes('bookworm')) throw new Error(`run ${ref}: ${r.code} ${r.stderr}`);
      const trace = JSON.parse(r.stderr.split('\n').find((l) => l.startsWith('{"trace"'))!).trace;
      return { seconds, requests: proxy.stats.requests, bytes: proxy.stats.responseBodyBytes, replay: trace?.replay };
    };

    const rows: BenchRow[] = [];
    for (const rtt of rtts) {
      proxy.setRtt(rtt);
      const without: Sample[] = [];
      const withTrace: Sample[] = [];
      for (let i = 0; i < runs; i++) {
        without.push(await cold(image, ['--no-auto-trace']));
        withTrace.push(await cold(traced, []));
      }
      const row = (what: string, unit: string, f: (s: Sample) => number): BenchRow => ({
        case: `RTT ${rtt} ms, cold dadi run, ${what}: with trace vs without`,
        unit,
        value: median(withTrace.map(f)),
        baseline: median(without.map(f)),
        baselineName: 'no trace',
      });
      rows.push(
        row('time', 's', (s) => s.seconds),
        row('registry requests', 'requests', (s) => s.requests),
        row('registry bytes', 'MB', (s) => s.bytes / 1e6),
        {
          case: `RTT ${rtt} ms, replay reads done`,
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
      );
    }
    report('trace-replay', 'Cold `dadi run -- cat /etc/os-release` on Debian minbase: trace replay vs none', rows);
  } finally {
    await stopDaemon();
    proxy.close();
    await reg.stop();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
