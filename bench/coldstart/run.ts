// Cold-start benchmark: how much sooner does a container print its first output with dadi than
// with the waterfall of pull (skopeo copy), unpack (umoci unpack) and start (runc run)? Same image
// (Debian bookworm + python3, image.ts), same shaped link (net.ts), runs alternated, page cache
// dropped before every run. Contestants, each timed from spawn to the line `1` on stdout of
// `python3 -c 'print(1)'`:
//   waterfall  skopeo copy docker://REG/app:oci → OCI layout, umoci unpack, runc run
//   dadi cold  `dadi run --rm REG/app:dadi` with an empty block cache (daemon already running)
//   dadi warm  the same right after a cold run (block cache full; page cache dropped)
// Registry bytes/requests are counted at the delaying proxy; bytes the container read are the
// block device's reads through the FUSE export (the daemon's `ps`, sampled while it runs).
// Root only. Writes docs/bench/coldstart.{json,md,svg}.
//
//   node --import tsx bench/coldstart/run.ts [--runs 5] [--settings 100mbit-20ms,1gbit-2ms]

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DaemonClient } from '../../src/runtime/client.js';
import { buildImage, dadiCommand, type ImageInfo, pushImages, REPO_ROOT, WORK } from './image.js';
import { type BenchNet, HOST_NS, type LinkSetting, startNet } from './net.js';
import { renderMarkdown, renderSvg, type SettingResult, type Spread } from './render.js';
import { inNetns, log, median, sh, timedRun } from './util.js';

const SETTINGS: LinkSetting[] = [
  { name: '100mbit-20ms', rateMbit: 100, rttMs: 20 },
  { name: '1gbit-2ms', rateMbit: 1000, rttMs: 2 },
];
const CMD = ['python3', '-c', 'print(1)'];
const FIRST_LINE = '1';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    settings: { type: 'string' },
    out: { type: 'string', default: join(REPO_ROOT, 'docs/bench') },
  },
});
const runs = Number(values.runs);
const settings = values.settings ? SETTINGS.filter((s) => values.settings!.split(',').includes(s.name)) : SETTINGS;

const STATE = join(WORK, 'dadi-state');
const CACHE = join(WORK, 'dadi-cache');
const WF = join(WORK, 'waterfall');

async function dropCaches(): Promise<void> {
  await sh('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

/** Build the CLI to JavaScript once per run (what `npm ci` installs), so neither side pays for tsx. */
async function buildCli(): Promise<void> {
  const out = join(REPO_ROOT, 'node_modules/.cache/dadi-bench/dist');
  log('building the dadi CLI (tsc) for the benchmark');
  await rm(out, { recursive: true, force: true });
  await sh(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', out], {
    allowFail: true,
  });
  const entry = join(out, 'cli/entry.js');
  if (!existsSync(entry)) throw new Error(`tsc did not produce ${entry}`);
  process.env.DADI_BENCH_CLI = entry;
}

// --- the daemon (long-lived host service: started before the clock, in the host namespace) ---

async function startDaemon(): Promise<DaemonClient> {
  const [node, ...args] = dadiCommand();
  const [c, a] = inNetns(HOST_NS, node!, [...args, 'daemon', '--state', STATE, '--cache-dir', CACHE]);
  return DaemonClient.connect({ stateDir: STATE, daemonCommand: [c, ...a], startTimeoutMs: 60_000 });
}

async function stopDaemon(): Promise<void> {
  const c = await DaemonClient.connect({ stateDir: STATE, autoStart: false }).catch(() => undefined);
  if (c) await c.shutdown();
}

interface Sample {
  seconds: number;
  registryBytes: number;
  registryRequests: number;
  /** dadi only: bytes the kernel read from the image's block device. */
  deviceBytesRead?: number;
  /** dadi only: seconds from launch until the daemon logged the rootfs mounted. */
  mountedS?: number;
}

// --- contestants ---

async function waterfall(net: BenchNet, i: number): Promise<Sample> {
  await rm(WF, { recursive: true, force: true });
  await mkdir(WF, { recursive: true });
  await dropCaches();
  await net.resetStats();
  const layout = join(WF, 'layout');
  const bundle = join(WF, 'bundle');
  const id = `dadi-bench-wf-${process.pid}-${i}`;
  const t0 = performance.now();
  try {
    await sh(
      'skopeo',
      ['copy', '--quiet', '--src-tls-verify=false', `docker://${net.registry}/app:oci`, `oci:${layout}:app`],
      { netns: HOST_NS },
    );
    await sh('umoci', ['unpack', '--image', `${layout}:app`, bundle]);
    const cfgPath = join(bundle, 'config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    cfg.process.terminal = false;
    cfg.process.args = CMD;
    await writeFile(cfgPath, JSON.stringify(cfg));
    const r = await timedRun('runc', ['--root', join(WF, 'runc'), 'run', '--bundle', bundle, id], FIRST_LINE, {
      netns: HOST_NS,
      t0,
    });
    if (r.code !== 0 || r.firstOutputS === undefined) {
      throw new Error(`waterfall: runc run failed (${r.code}): ${r.stderr.slice(-1000)}`);
    }
    const s = await net.stats();
    return { seconds: r.firstOutputS, registryBytes: s.responseBodyBytes, registryRequests: s.requests };
  } finally {
    await sh('runc', ['--root', join(WF, 'runc'), 'delete', '--force', id], { allowFail: true });
    await rm(WF, { recursive: true, force: true });
  }
}

async function dadiRun(net: BenchNet, cold: boolean): Promise<Sample> {
  if (cold) {
    await stopDaemon();
    await rm(CACHE, { recursive: true, force: true });
  }
  const client = await startDaemon();
  await dropCaches();
  await net.resetStats();
  // The device's read counter, sampled from the first output until the device goes away (--rm):
  // not before, so that the timed part runs without the extra requests to the daemon.
  let deviceBytesRead: number | undefined;
  let polling: Promise<void> | undefined;
  let done = false;
  const poll = async () => {
    while (!done) {
      const devs = await client.ps().catch(() => []);
      for (const d of devs) deviceBytesRead = Math.max(deviceBytesRead ?? 0, d.bytesRead);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const [node, ...args] = dadiCommand();
  const wall0 = Date.now();
  const r = await timedRun(
    node!,
    [...args, 'run', '--rm', '--state', STATE, `${net.registry}/app:dadi`, '--', ...CMD],
    FIRST_LINE,
    { netns: HOST_NS, onFirstOutput: () => (polling = poll()) },
  ).finally(async () => {
    done = true;
    await polling;
  });
  if (r.code !== 0 || r.firstOutputS === undefined) {
    throw new Error(`dadi run failed (${r.code}): ${r.stderr.slice(-1500)}`);
  }
  const s = await net.stats();
  return {
    seconds: r.firstOutputS,
    registryBytes: s.responseBodyBytes,
    registryRequests: s.requests,
    deviceBytesRead,
    mountedS: await mountedAfter(wall0),
  };
}

/** Seconds from `wall0` (ms since the epoch) to the daemon's first "mounted" log line after it. */
async function mountedAfter(wall0: number): Promise<number | undefined> {
  const text = await readFile(join(STATE, 'daemon.log'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const m = /^(\S+) dadi daemon: \S+: mounted /.exec(line);
    const t = m ? Date.parse(m[1]!) : Number.NaN;
    if (t >= wall0) return (t - wall0) / 1000;
  }
  return undefined;
}

/** `dadi --version` with the page cache dropped: what loading the CLI alone costs. */
async function cliStart(): Promise<number> {
  await dropCaches();
  const [node, ...args] = dadiCommand();
  const r = await timedRun(node!, [...args, '--version'], '0.1.0', { netns: HOST_NS });
  if (r.firstOutputS === undefined) throw new Error(`dadi --version failed: ${r.stderr}`);
  return r.firstOutputS;
}

// --- summary ---

function machineNote(m: { cpus: number; loadavg_start: number[]; loadavg_end: number[] }): string {
  const l = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' ');
  return `Machine: ${m.cpus} CPUs; load average ${l(m.loadavg_start)} at the start, ${l(m.loadavg_end)} at the end (other jobs share the machine: read the times as ratios).`;
}

function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs };
}

async function dadiImageBytes(net: BenchNet): Promise<number> {
  const r = await sh(
    'curl',
    [
      '-sf',
      '-H',
      'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
      `http://${net.registry}/v2/app/manifests/dadi`,
    ],
    { netns: HOST_NS },
  );
  const m = JSON.parse(r.stdout) as { layers: { size: number }[] };
  return m.layers.reduce((a, l) => a + l.size, 0);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces, runc, drop_caches)');
  const tools = ['debootstrap', 'umoci', 'skopeo', 'docker-registry', 'runc', 'ip', 'tc', 'nsenter', 'curl'];
  const missing = [];
  for (const t of tools)
    if ((await sh('sh', ['-c', `command -v ${t}`], { allowFail: true })).code !== 0) missing.push(t);
  if (missing.length) {
    throw new Error(
      `missing ${missing.join(', ')}: apt-get install -y --no-install-recommends debootstrap umoci skopeo docker-registry runc iproute2 curl`,
    );
  }
  const started = performance.now();
  const loadStart = loadavg();
  await mkdir(WORK, { recursive: true });
  const img: ImageInfo = await buildImage();
  await buildCli();
  const net = await startNet(WORK);
  const results: SettingResult[] = [];
  // An interrupted run still stops the daemon and deletes the namespaces.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await stopDaemon().catch((e) => log(`stopping the dadi daemon: ${(e as Error).message}`));
      await net.close();
      await rm(WF, { recursive: true, force: true });
    })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await net.setLink({ name: 'setup', rateMbit: 1000, rttMs: 0 });
    const pushed = await pushImages(img, net.registry, HOST_NS);
    const dadiBytes = await dadiImageBytes(net);
    for (const setting of settings) {
      await net.setLink(setting);
      const wf: Sample[] = [];
      const cold: Sample[] = [];
      const warm: Sample[] = [];
      const cli: number[] = [];
      for (let i = 0; i < runs; i++) {
        cli.push(await cliStart());
        // Alternate which contestant goes first; warm always follows its cold run.
        const order = i % 2 === 0 ? ['wf', 'dadi'] : ['dadi', 'wf'];
        for (const who of order) {
          if (who === 'wf') {
            const s = await waterfall(net, i);
            wf.push(s);
            log(
              `${setting.name} #${i + 1} waterfall ${s.seconds.toFixed(2)} s, ${s.registryBytes} B in ${s.registryRequests} requests`,
            );
          } else {
            const c = await dadiRun(net, true);
            cold.push(c);
            log(
              `${setting.name} #${i + 1} dadi cold ${c.seconds.toFixed(2)} s, ${c.registryBytes} B in ${c.registryRequests} requests, device read ${c.deviceBytesRead} B`,
            );
            const w = await dadiRun(net, false);
            warm.push(w);
            log(
              `${setting.name} #${i + 1} dadi warm ${w.seconds.toFixed(2)} s, ${w.registryBytes} B in ${w.registryRequests} requests, device read ${w.deviceBytesRead} B`,
            );
          }
        }
      }
      const waterfall_s = spread(wf.map((s) => s.seconds));
      const dadi_cold_s = spread(cold.map((s) => s.seconds));
      const dadi_warm_s = spread(warm.map((s) => s.seconds));
      const registry_bytes_dadi_cold = median(cold.map((s) => s.registryBytes));
      const read = (xs: Sample[]) => xs.map((s) => s.deviceBytesRead).filter((b): b is number => b !== undefined);
      const bytes_read_by_container = read(cold).length ? median(read(cold)) : Number.NaN;
      const fetchedOverRead = cold.filter((s) => s.deviceBytesRead).map((s) => s.registryBytes / s.deviceBytesRead!);
      const mounted = (xs: Sample[]) => median(xs.map((s) => s.mountedS).filter((x): x is number => x !== undefined));
      results.push({
        setting: setting.name,
        rate_mbit: setting.rateMbit,
        rtt_ms: setting.rttMs,
        waterfall_s: waterfall_s.median,
        dadi_cold_s: dadi_cold_s.median,
        dadi_warm_s: dadi_warm_s.median,
        spread_s: { waterfall: waterfall_s, dadi_cold: dadi_cold_s, dadi_warm: dadi_warm_s },
        cold_over_waterfall: dadi_cold_s.median / waterfall_s.median,
        cold_over_waterfall_runs: cold.map((c, k) => c.seconds / wf[k]!.seconds),
        registry_bytes_dadi_cold,
        registry_requests_dadi_cold: median(cold.map((s) => s.registryRequests)),
        registry_bytes_dadi_warm: median(warm.map((s) => s.registryBytes)),
        registry_bytes_waterfall: median(wf.map((s) => s.registryBytes)),
        registry_requests_waterfall: median(wf.map((s) => s.registryRequests)),
        bytes_read_by_container,
        bytes_read_by_container_runs: cold.map((s) => s.deviceBytesRead ?? null),
        bytes_read_by_container_warm: read(warm).length ? median(read(warm)) : Number.NaN,
        registry_bytes_dadi_cold_runs: cold.map((s) => s.registryBytes),
        fetched_over_read: fetchedOverRead.length ? median(fetchedOverRead) : Number.NaN,
        fetched_over_read_runs: fetchedOverRead,
        breakdown_s: {
          dadi_cli_start: spread(cli),
          dadi_cold_until_mounted: mounted(cold),
          dadi_warm_until_mounted: mounted(warm),
        },
        image_bytes: img.layersCompressed.reduce((a, b) => a + b, 0),
        image_bytes_uncompressed: img.layersUncompressed.reduce((a, b) => a + b, 0),
        image_bytes_dadi: dadiBytes,
      });
    }
    const json = {
      name: 'coldstart',
      title: 'Cold start: dadi (lazy, block-level) vs pull + unpack + runc',
      date: new Date().toISOString(),
      node: process.version,
      machine: { cpus: cpus().length, loadavg_start: loadStart, loadavg_end: loadavg() },
      runs,
      command: CMD,
      image: {
        description: 'Debian bookworm minbase (debootstrap) + python3, 2 layers (umoci)',
        oci_layers_gzip_bytes: img.layersCompressed,
        oci_layers_tar_bytes: img.layersUncompressed,
        dadi_layers_bytes: dadiBytes,
        convert_s: pushed.convertS,
      },
      method: {
        timing: 'spawn of the first command until the line "1" appears on stdout',
        waterfall: 'skopeo copy docker://→oci layout, umoci unpack, runc run',
        dadi: 'dadi run --rm (built CLI, daemon already running); cold: empty block cache; warm: block cache from the previous cold run',
        page_cache: 'dropped (echo 3 > /proc/sys/vm/drop_caches) before every run',
        registry_bytes: 'HTTP response body bytes counted at the delaying proxy (manifests, configs and blobs)',
        bytes_read_by_container:
          "bytes the kernel read from the image's block device (FUSE export counter via the daemon's ps, sampled every ~5 ms from the first output until the device is removed)",
        network:
          'registry and host in separate network namespaces joined by a veth pair, tbf on both ends; latency added by a user-space proxy on the host side',
      },
      settings: results,
      total_s: (performance.now() - started) / 1000,
    };
    await mkdir(values.out!, { recursive: true });
    await writeFile(join(values.out!, 'coldstart.json'), `${JSON.stringify(json, null, 2)}\n`);
    await writeFile(
      join(values.out!, 'coldstart.md'),
      renderMarkdown(json.title, results, runs, machineNote(json.machine)),
    );
    await writeFile(join(values.out!, 'coldstart.svg'), renderSvg(json.title, results));
    console.log(JSON.stringify(json, null, 2));
    console.log(renderMarkdown(json.title, results, runs, machineNote(json.machine)));
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
