// Cold-start benchmark: how soon does a container print its first output, and how many registry
// bytes does that take, with dadi against its peers? Same images (image.ts), same registry, same
// shaped link (net.ts), contestants alternated, every side's daemons started on empty state and the
// page cache dropped before every run. Contestants (contestants.ts):
//   dadi-cold        `dadi run --rm` with a new daemon and an empty block cache
//   dadi-trace       the same on the image with a recorded trace (`dadi record-trace`), when available
//   dadi-warm        right after dadi-cold (block cache kept; page cache dropped)
//   dadi-snapshotter containerd 1.6 + `dadi snapshotter`: `dadi pull --containerd-address` + `ctr run`
//   stargz           containerd 1.6 + stargz snapshotter: `ctr-remote image rpull` + `ctr run`
//   stargz-optimized the same on the image `ctr-remote image optimize` made for the workload (the
//                    files its recorded run read come first and are prefetched at rpull)
//   containerd       containerd 1.6: `ctr images pull` (download + unpack) + `ctr run` on overlayfs
//   waterfall        skopeo copy → OCI layout, umoci unpack, runc run
// Root only. Writes docs/bench/coldstart.{json,md,svg} (or --out). With DADI_BENCH_DAEMON_PROFILE=DIR
// each dadi daemon runs under `node --cpu-prof` and leaves its CPU profile in DIR.
//
//   npm run bench:coldstart -- [--runs 3] [--links loopback,100mbit-20ms] [--workloads cat]
//                              [--contestants dadi-cold,dadi-warm,stargz] [--name coldstart]
//                              [--keep-others]  (keep the report's cells of the other workloads)

import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ProcessLock } from '../../src/util/process-lock.js';
import { ensureStargz, PrivateContainerd, pushEstargz, pushEstargzOptimized } from './containerd.js';
import {
  CACHE,
  type Ctx,
  cleanupWaterfall,
  containerdPull,
  dadiRun,
  dadiSnapshotter,
  type Sample,
  STATE,
  stargz,
  stargzOptimized,
  stopDaemon,
  type Workload,
  waterfall,
} from './contestants.js';
import {
  BASE_TAG,
  buildCli,
  buildImage,
  dadiCommand,
  pushImage,
  pushOci,
  REPO_ROOT,
  TAG,
  WORK,
  withParentDirs,
} from './image.js';
import { HOST_NS, type LinkSetting, startNet } from './net.js';
import { keepResident, type ResidentStorage } from './registry-resident.js';
import { type BenchResult, type CellResult, CONTESTANTS, renderMarkdown, renderSvg, summarize } from './render.js';
import { log, sh } from './util.js';

const LINKS: LinkSetting[] = [
  { name: 'loopback', rttMs: 0 },
  { name: '1gbit-2ms', rateMbit: 1000, rttMs: 2 },
  { name: '100mbit-20ms', rateMbit: 100, rttMs: 20 },
  { name: '1gbit-50ms', rateMbit: 1000, rttMs: 50 },
];

const WORKLOADS: Workload[] = [
  {
    name: 'cat',
    image: BASE_TAG,
    cmd: ['cat', '/etc/os-release'],
    firstLine: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
  },
  // The imports print nothing: the print after them marks the end of the start.
  {
    name: 'python',
    image: TAG,
    cmd: ['python3', '-c', 'import json, http.server; print("imported")'],
    firstLine: 'imported',
  },
];

type Contestant = (typeof CONTESTANTS)[number];

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    links: { type: 'string' },
    workloads: { type: 'string' },
    contestants: { type: 'string' },
    out: { type: 'string', default: join(REPO_ROOT, 'docs/bench') },
    /** Report file names: NAME.{json,md,svg} (a partial matrix can go beside the full one). */
    name: { type: 'string', default: 'coldstart' },
    /**
     * Keep the existing NAME.json's cells of the workloads this invocation does not run (a full
     * matrix measured in several shorter holds of the machine, one workload each).
     */
    'keep-others': { type: 'boolean', default: false },
  },
});

function pick<T extends { name: string }>(all: T[], list: string | undefined, what: string): T[] {
  if (!list) return all;
  const names = list.split(',');
  const bad = names.filter((n) => !all.some((x) => x.name === n));
  if (bad.length) throw new Error(`unknown ${what}: ${bad.join(', ')} (known: ${all.map((x) => x.name).join(', ')})`);
  return all.filter((x) => names.includes(x.name));
}

const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs must be 1–50, not ${values.runs}`);
const links = pick(LINKS, values.links, 'link');
const workloads = pick(WORKLOADS, values.workloads, 'workload');
const contestants = pick(
  CONTESTANTS.map((name) => ({ name })),
  values.contestants,
  'contestant',
).map((c) => c.name as Contestant);

/** Why the trace contestant cannot run here, or undefined when `dadi record-trace` exists. */
async function traceUnavailable(): Promise<string | undefined> {
  const [node, ...args] = dadiCommand();
  const help = await sh(node!, [...args, '--help'], { allowFail: true });
  return /^\s+record-trace\b/m.test(help.stdout)
    ? undefined
    : '`dadi record-trace` is not available in this build (not on main yet)';
}

/** Record a trace of the workload into `REF-trace` (dadi record-trace, registry → registry). */
async function recordTrace(dadi: string, w: Workload): Promise<string> {
  const traced = `${dadi}-trace`;
  const [node, ...args] = dadiCommand();
  log(`dadi record-trace ${dadi} ${traced} -- ${w.cmd.join(' ')}`);
  await stopDaemon();
  await rm(CACHE, { recursive: true, force: true });
  await rm(join(STATE, 'traces'), { recursive: true, force: true });
  await sh(node!, [...args, 'record-trace', '--state', STATE, dadi, traced, '--', ...w.cmd], {
    netns: HOST_NS,
    env: { ...process.env, HOME: WORK },
  });
  await stopDaemon();
  return traced;
}

async function checkTools(): Promise<void> {
  const tools = ['debootstrap', 'umoci', 'skopeo', 'docker-registry', 'runc', 'ip', 'tc', 'nsenter', 'curl', 'vmtouch'];
  const missing = [];
  for (const t of tools)
    if ((await sh('sh', ['-c', `command -v ${t}`], { allowFail: true })).code !== 0) missing.push(t);
  if (missing.length) {
    throw new Error(
      `missing ${missing.join(', ')}: apt-get install -y --no-install-recommends debootstrap umoci skopeo docker-registry runc iproute2 curl vmtouch`,
    );
  }
}

/** Write the reports from the cells so far (after every cell: an interrupted run keeps what it measured). */
async function writeReports(
  cells: CellResult[],
  imageInfo: BenchResult['images'],
  unavailable: Record<string, string>,
  loadStart: number[],
  started: number,
  complete: boolean,
): Promise<BenchResult> {
  // Read once, before this invocation's first write replaces the file.
  keptCells ??= values['keep-others'] ? otherWorkloads() : Promise.resolve(undefined);
  const kept = await keptCells;
  const result: BenchResult = {
    name: 'coldstart',
    title: 'Cold start: dadi against containerd + stargz, containerd and the pull/unpack/run waterfall',
    date: new Date().toISOString(),
    node: process.version,
    machine: { cpus: cpus().length, loadavg_start: loadStart, loadavg_end: loadavg() },
    runs,
    workloads: { ...kept?.workloads, ...Object.fromEntries(workloads.map((w) => [w.name, w.cmd])) },
    images: { ...kept?.images, ...imageInfo },
    unavailable,
    method: {
      timing: "from the first spawn of the contestant's first command until the workload's first line on stdout",
      daemons: 'every side starts its daemons on empty state before the clock (dadi daemon; containerd + stargz)',
      page_cache:
        "this host's dropped (echo 3 > /proc/sys/vm/drop_caches) before every run; the registry's storage held in memory (vmtouch -l), as a remote registry serving the same blobs run after run has them",
      registry_bytes: 'HTTP response body bytes counted at the delaying proxy (manifests, configs and blobs)',
      device_bytes_read:
        "dadi: bytes the kernel read from the image's block device (uncompressed; FUSE export counter via the daemon's ps)",
      network:
        'registry and host in separate network namespaces joined by a veth pair, tbf on both ends (none on loopback); latency added by a user-space proxy on the host side',
    },
    ...(kept ? { note: kept.note } : {}),
    complete,
    cells: [...(kept?.cells ?? []), ...cells],
    total_s: (performance.now() - started) / 1000,
  };
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, `${values.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(values.out!, `${values.name}.md`), renderMarkdown(result));
  await writeFile(join(values.out!, `${values.name}.svg`), renderSvg(result));
  return result;
}

let keptCells: ReturnType<typeof otherWorkloads> | undefined;

/** With --keep-others: the existing report's cells (and their images) of the workloads not run now. */
async function otherWorkloads(): Promise<Pick<BenchResult, 'cells' | 'images' | 'workloads' | 'note'> | undefined> {
  const file = join(values.out!, `${values.name}.json`);
  const old = JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as BenchResult | null;
  if (!old) return undefined;
  const running = new Set(workloads.map((w) => w.name));
  const cells = old.cells.filter((c) => !running.has(c.workload));
  const keptNames = new Set(cells.map((c) => c.workload));
  const pickNames = <T>(r: Record<string, T>) =>
    Object.fromEntries(Object.entries(r).filter(([k]) => keptNames.has(k)));
  const when = [...keptNames].map((w) => `${w} from the run of ${old.date}`).join(', ');
  return {
    cells,
    images: pickNames(old.images),
    workloads: pickNames(old.workloads),
    note: keptNames.size ? `kept from an earlier invocation (--keep-others): ${when}` : '',
  };
}

/**
 * One run per host at a time: two would delete each other's namespaces, registry and daemons (the
 * names are fixed). A second run waits for the first (bounded), saying who holds the machine.
 */
async function holdTheMachine(): Promise<ProcessLock> {
  const about = `pid ${process.pid}: ${process.argv.slice(2).join(' ')}`;
  for (let waited = 0; ; waited += 10) {
    const lock = await ProcessLock.tryAcquire('bench coldstart', about);
    if (lock) return lock;
    if (waited >= 3600) throw new Error('another coldstart benchmark has held the machine for an hour');
    if (waited % 60 === 0)
      log(`waiting for another coldstart benchmark to finish (${await ProcessLock.holder('bench coldstart')})`);
    await new Promise((r) => setTimeout(r, 10_000));
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces, runc, drop_caches)');
  const machine = await holdTheMachine();
  try {
    await benchmark();
  } finally {
    await machine.release();
  }
}

async function benchmark(): Promise<void> {
  await checkTools();
  // The registry bytes are what a start needs: no background whole-layer pull in the daemons started
  // here (they inherit this environment), as stargz runs without its background fetch.
  process.env.DADI_PULL = 'off';
  const wantsContainerd = contestants.some((c) =>
    ['stargz', 'stargz-optimized', 'containerd', 'dadi-snapshotter'].includes(c),
  );
  if (wantsContainerd) await ensureStargz();
  const started = performance.now();
  const loadStart = loadavg();
  await mkdir(WORK, { recursive: true });
  const images = await buildImage();
  // $DADI_BENCH_CLI=…/dist/cli/entry.js: that build (an A/B against another tree in one hold of the lock).
  if (process.env.DADI_BENCH_CLI) log(`using the dadi CLI built at ${process.env.DADI_BENCH_CLI}`);
  else await buildCli();
  const unavailable: Record<string, string> = {};
  if (contestants.includes('dadi-trace')) {
    const why = await traceUnavailable();
    if (why) unavailable['dadi-trace'] = why;
  }
  const net = await startNet(WORK);
  const ctd = new PrivateContainerd(join(WORK, 'containerd'), HOST_NS, net.registry);
  // An interrupted run still stops the daemons and deletes the namespaces.
  let cleaning: Promise<void> | undefined;
  let resident: ResidentStorage | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await resident?.stop().catch((e) => log(`releasing the registry's storage: ${(e as Error).message}`));
      await stopDaemon().catch((e) => log(`stopping the dadi daemon: ${(e as Error).message}`));
      await ctd.stop().catch((e) => log(`stopping containerd: ${(e as Error).message}`));
      await net.close();
      await cleanupWaterfall();
    })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const cells: CellResult[] = [];
  const imageInfo: BenchResult['images'] = {};
  try {
    await net.setLink({ name: 'setup', rttMs: 0 });
    const refsByWorkload = new Map<string, Ctx['refs']>();
    for (const w of workloads) {
      const img = images[w.image]!;
      const pushed = await pushImage(img, net.registry, HOST_NS);
      const esgz = `${net.registry}/${w.image}:esgz`;
      if (wantsContainerd) {
        await pushEstargz(ctd, pushed.oci, esgz, img.manifestDigest, join(WORK, `esgz-${w.image}.marker`));
      }
      const refs: Ctx['refs'] = { oci: pushed.oci, dadi: pushed.dadi, esgz };
      if (contestants.includes('stargz-optimized')) {
        const ref = `${net.registry}/${w.image}:esgz-optimized-${w.name}`;
        const marker = join(WORK, `esgz-optimized-${w.name}.marker`);
        // The peer's optimizer needs every parent directory in each layer's tar, which umoci's diff
        // layers leave out: it gets the same image with them added. Should it still refuse, that
        // workload runs without this contestant.
        const source = await withParentDirs(img);
        const from =
          source === img.tag ? pushed.oci : await pushOci(source, w.image, 'oci-parents', net.registry, HOST_NS);
        const key = source === img.tag ? img.manifestDigest : `${img.manifestDigest} ${source}`;
        await pushEstargzOptimized(ctd, from, ref, w.cmd, key, marker).then(
          () => (refs.esgzOptimized = ref),
          (e: Error) => {
            const why = /^ctr-remote: .*$/m.exec(e.message)?.[0] ?? e.message.slice(0, 300);
            unavailable[`stargz-optimized (${w.name})`] = `\`ctr-remote image optimize\` failed: ${why}`;
            log(`stargz-optimized is not run for ${w.name}: ${why}`);
          },
        );
      }
      if (contestants.includes('dadi-trace') && !unavailable['dadi-trace']) {
        refs.dadiTrace = await recordTrace(pushed.dadi, w);
      }
      refsByWorkload.set(w.name, refs);
      imageInfo[w.name] = {
        image: w.image,
        oci_layers_gzip_bytes: img.layersCompressed,
        oci_layers_tar_bytes: img.layersUncompressed,
        convert_s: pushed.convertS,
      };
    }
    // After every push (the images, their traces): the runs add no blobs.
    resident = await keepResident(join(WORK, 'registry'), WORK);
    const active = contestants.filter((c) => !unavailable[c]);
    for (const w of workloads) {
      for (const link of links) {
        await net.setLink(link);
        const x: Ctx = { net, ctd, workload: w, refs: refsByWorkload.get(w.name)! };
        const samples: Partial<Record<Contestant, Sample[]>> = {};
        const add = (c: Contestant, s: Sample) => {
          (samples[c] ??= []).push(s);
          log(
            `${w.name} ${link.name} #${samples[c]!.length} ${c} ${s.seconds.toFixed(2)} s, ` +
              `${s.registryBytes} B in ${s.registryRequests} requests` +
              (s.deviceBytesRead !== undefined ? `, device read ${s.deviceBytesRead} B` : ''),
          );
          // Every run's steps, for finding which one grows in the slow runs (the report keeps medians).
          if (s.timings) log(`  steps: ${s.timings.map((t) => `${t.step} ${Math.round(t.ms)}`).join(', ')}`);
        };
        // Each round starts with the next contestant; dadi-warm always follows its cold run.
        const order = active.filter((c) => c !== 'dadi-warm');
        for (let i = 0; i < runs; i++) {
          const round = [...order.slice(i % order.length), ...order.slice(0, i % order.length)];
          for (const c of round) {
            if (c === 'dadi-cold') {
              add(c, await dadiRun(x, x.refs.dadi, { cold: true, trace: false }));
              if (active.includes('dadi-warm'))
                add('dadi-warm', await dadiRun(x, x.refs.dadi, { cold: false, trace: false }));
            } else if (c === 'dadi-trace') add(c, await dadiRun(x, x.refs.dadiTrace!, { cold: true, trace: true }));
            else if (c === 'dadi-snapshotter') add(c, await dadiSnapshotter(x, i));
            else if (c === 'stargz') add(c, await stargz(x, i));
            else if (c === 'stargz-optimized') {
              if (x.refs.esgzOptimized) add(c, await stargzOptimized(x, i));
            } else if (c === 'containerd') add(c, await containerdPull(x, i));
            else if (c === 'waterfall') add(c, await waterfall(x, i));
          }
        }
        cells.push({ ...summarize(w.name, link, samples), loadavg_end: loadavg() });
        await writeReports(cells, imageInfo, unavailable, loadStart, started, false);
      }
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  console.log(renderMarkdown(await writeReports(cells, imageInfo, unavailable, loadStart, started, true)));
}

await main();
