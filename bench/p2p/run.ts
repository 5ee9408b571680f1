// P2P benchmark (issue #13): N namespaced hosts cold-start the same container at once, against one
// registry behind a shaped uplink, without P2P (every host reads the registry: the baseline) and
// with it (`dadi p2p root` + the agent in every `dadi daemon`), then under faults: parents killed
// mid-transfer, a malicious peer, the root restarted mid-run, a host without registry access.
// Root only. Writes docs/bench/p2p.{json,md,svg} (or --out/--name).
//
//   npm run bench:p2p -- [--hosts 20] [--big 50] [--workload cat|python] [--modes baseline,p2p]
//                        [--no-faults] [--uplink-mbit 1000] [--host-mbit 1000] [--registry-rtt-ms 2] [--fanout 4]
//   npm run bench:p2p -- --hosts 20 --big 50 --big-only …   (only the 50; the report's 20-host runs are kept)
//   npm run bench:p2p -- --hosts 20 --keep-others …          (the 20 anew; the report's other runs are kept)
// DADI_BENCH_CLI=path/to/cli/entry.js measures that build instead of building this tree's
// (DADI_BENCH_BUILD names it in the report). DADI_P2P_BENCH_PROFILE=<host> writes that host's
// daemon CPU profiles under $DADI_P2P_BENCH_DIR/profiles. DADI_P2P_BENCH_KEEP_LOGS=<dir> keeps each
// cluster's logs (registry, root, every daemon: why an agent fell back to the registry) in
// <dir>/<mode>-<hosts> instead of removing them with the run's folder.

import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BASE_TAG, buildCli, buildImage, converterKey, REPO_ROOT, TAG, WORK } from '../coldstart/image.js';
import { log, sh } from '../coldstart/util.js';
import { Cluster, p2pAvailable } from './cluster.js';
import { type BenchReport, type ModeResult, renderMarkdown, renderSvg, summarizeFaults } from './render.js';
import {
  accessProbes,
  coldCluster,
  corruptReports,
  killParents,
  layerBlobPaths,
  restartRoot,
  type StartOutcome,
  startAll,
  type Workload,
} from './scenarios.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '20' },
    big: { type: 'string' },
    /** Run only the --big cluster; the --hosts runs are kept from the existing report (a long run split in two). */
    'big-only': { type: 'boolean', default: false },
    /** Keep the existing report's runs at host counts this invocation does not run. */
    'keep-others': { type: 'boolean', default: false },
    workload: { type: 'string', default: 'cat' },
    modes: { type: 'string', default: 'baseline,p2p' },
    'no-faults': { type: 'boolean', default: false },
    'uplink-mbit': { type: 'string', default: '1000' },
    'host-mbit': { type: 'string', default: '1000' },
    'registry-rtt-ms': { type: 'string', default: '2' },
    fanout: { type: 'string', default: '4' },
    out: { type: 'string', default: join(REPO_ROOT, 'docs/bench') },
    name: { type: 'string', default: 'p2p' },
  },
});

function int(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be ${min}–${max}, not ${v}`);
  return n;
}

const HOSTS = int('hosts', values.hosts, 2, 200);
const BIG = values.big === undefined ? undefined : int('big', values.big, 2, 200);
const UPLINK = int('uplink-mbit', values['uplink-mbit'], 1, 100_000);
const HOST_LINK = int('host-mbit', values['host-mbit'], 1, 100_000);
const RTT = int('registry-rtt-ms', values['registry-rtt-ms'], 0, 1000);
const FANOUT = int('fanout', values.fanout, 1, 64);
const MODES = values.modes!.split(',');
for (const m of MODES) if (m !== 'baseline' && m !== 'p2p') throw new Error(`unknown mode ${m} (baseline, p2p)`);

const BENCH_DIR = process.env.DADI_P2P_BENCH_DIR ?? '/var/tmp/dadi-p2p-bench';
const ACCOUNT = { username: 'bench', password: 'dadi-p2p-bench' };
/** Mid-transfer: when the registry has sent this share of what one host's cold start needs. */
const MID = 0.3;

async function workload(): Promise<{ w: Workload; tag: string }> {
  if (values.workload === 'cat') {
    const expected = await readFile(join(WORK, 'rootfs-base/usr/lib/os-release'), 'utf8');
    const firstLine = expected.split('\n')[0]!;
    return { w: { name: 'cat', cmd: ['cat', '/etc/os-release'], firstLine, expected }, tag: BASE_TAG };
  }
  if (values.workload === 'python') {
    const cmd = ['python3', '-c', 'import json, http.server; print("imported")'];
    return { w: { name: 'python', cmd, firstLine: 'imported', expected: 'imported\n' }, tag: TAG };
  }
  throw new Error(`unknown workload ${values.workload} (cat, python)`);
}

async function checkTools(): Promise<void> {
  const tools = [
    'debootstrap',
    'umoci',
    'docker-registry',
    'htpasswd',
    'runc',
    'ip',
    'tc',
    'iptables',
    'nsenter',
    'curl',
  ];
  const missing = [];
  for (const t of tools)
    if ((await sh('sh', ['-c', `command -v ${t}`], { allowFail: true })).code !== 0) missing.push(t);
  if (missing.length) throw new Error(`missing ${missing.join(', ')} (scripts/setup.sh installs them)`);
}

/** One mode on a cluster of `hosts`: one host's cold start, all hosts at once, then the faults. */
async function runMode(
  mode: 'baseline' | 'p2p',
  hosts: number,
  faults: boolean,
  ctx: { layout: string; tag: string; w: Workload; key: string; cleanups: (() => Promise<void>)[] },
): Promise<ModeResult> {
  const workDir = join(BENCH_DIR, `run-${process.pid}-${mode}-${hosts}`);
  await rm(workDir, { recursive: true, force: true });
  const c = await Cluster.start({
    workDir,
    registryStorage: join(BENCH_DIR, 'registry'),
    hosts,
    uplinkMbit: UPLINK,
    hostMbit: HOST_LINK,
    registryRttMs: RTT,
    account: ACCOUNT,
    p2p: mode === 'p2p',
    rootArgs: ['--fanout', String(FANOUT)],
  });
  const close = async () => {
    await c.close();
    const keep = process.env.DADI_P2P_BENCH_KEEP_LOGS;
    if (keep) {
      await cp(join(workDir, 'logs'), join(keep, `${mode}-${hosts}`), { recursive: true }).catch((e: unknown) =>
        log(`keeping the logs failed: ${(e as Error).message}`),
      );
    }
    await rm(workDir, { recursive: true, force: true });
  };
  ctx.cleanups.push(close);
  try {
    const repo = `p2p/${ctx.tag}`;
    const ref = await c.convertImage(ctx.layout, ctx.tag, repo, ctx.key);
    const blobs = await layerBlobPaths(c, repo);
    const show = (o: StartOutcome) =>
      log(
        `${mode} ${o.hosts} host(s) [${o.fault}]: all printed ${o.allStartedS?.toFixed(2) ?? '—'} s, ` +
          `registry ${o.registryBytes} B in ${o.registryRequests} requests, wrong ${o.wrongBytes} B, stuck ${o.stuckHosts}` +
          `; cpu s ${JSON.stringify(o.cpuSeconds)}` +
          (o.tally ? `; p2p ${JSON.stringify(o.tally)}` : ''),
      );
    await coldCluster(c);
    const single = await startAll(c, ref, ctx.w, { hosts: [0] });
    show(single);
    await coldCluster(c);
    const all = await startAll(c, ref, ctx.w);
    show(all);
    const result: ModeResult = { mode, hosts, single, all, faults: [] };
    if (!faults) return result;
    const mark = Math.round(single.registryBytes * MID);
    await coldCluster(c);
    const killed = await startAll(c, ref, ctx.w, { fault: killParents(2, mark) });
    show(killed);
    result.faults.push(killed);

    c.opts.malicious = [1];
    await coldCluster(c);
    const bad = await startAll(c, ref, ctx.w, { first: 1 });
    bad.fault = 'one malicious peer (host 1) serves wrong bytes';
    if (mode === 'p2p')
      bad.notes.push(`${await corruptReports(c, 1)} reports of host 1's wrong bytes reached the root`);
    show(bad);
    result.faults.push(bad);
    c.opts.malicious = [];

    if (mode === 'p2p') {
      await coldCluster(c);
      const restarted = await startAll(c, ref, ctx.w, { fault: restartRoot(mark, 2000) });
      show(restarted);
      result.faults.push(restarted);
    }

    const outsider = hosts - 1;
    c.opts.noAccess = [outsider];
    await coldCluster(c);
    const noAccess = await startAll(c, ref, ctx.w);
    noAccess.fault = `host ${outsider} has no registry access`;
    const probes = await accessProbes(c, outsider, blobs[0]!, 0);
    noAccess.notes.push(...probes.map((p) => `${p.target}: HTTP ${p.status}, ${p.bytes} B`));
    const run = noAccess.perHost.find((h) => h.host === outsider)!;
    result.noAccess = {
      host: outsider,
      runExit: run.code,
      printed: run.firstOutputS !== undefined,
      probes,
      gotBytes: probes.reduce((a, p) => a + p.bytes, 0) + (run.firstOutputS !== undefined ? 1 : 0),
    };
    show(noAccess);
    result.faults.push(noAccess);
    c.opts.noAccess = [];
    return result;
  } finally {
    ctx.cleanups.splice(ctx.cleanups.indexOf(close), 1);
    await close();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces, runc, drop_caches)');
  await checkTools();
  const started = performance.now();
  const loadStart = loadavg();
  await mkdir(BENCH_DIR, { recursive: true });
  const { w, tag } = await workload();
  await buildImage();
  // DADI_BENCH_CLI names a built CLI to measure instead (another build of dadi).
  const build = process.env.DADI_BENCH_CLI
    ? `another build (DADI_BENCH_CLI): ${process.env.DADI_BENCH_BUILD ?? process.env.DADI_BENCH_CLI}`
    : 'this tree, built by the benchmark';
  if (!process.env.DADI_BENCH_CLI) await buildCli('dadi-bench-p2p');
  const layout = join(WORK, 'oci');
  const key = `${tag}:${await converterKey()}:${(await readFile(join(layout, 'index.json'), 'utf8')).length}`;
  const havePeer = await p2pAvailable();
  const unavailable: Record<string, string> = {};
  if (!havePeer) unavailable.p2p = '`dadi p2p root` is not in this build (not on main yet)';
  const modes = MODES.filter((m) => m === 'baseline' || havePeer) as ('baseline' | 'p2p')[];
  const cleanups: (() => Promise<void>)[] = [];
  const onSignal = () =>
    void (async () => {
      for (const c of [...cleanups]) await c().catch(() => {});
      process.exit(130);
    })();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: ModeResult[] = [];
  const reportPath = join(values.out!, `${values.name}.json`);
  const others = values['keep-others']
    ? (JSON.parse(await readFile(reportPath, 'utf8')) as BenchReport).modes.filter(
        (m) => m.hosts !== HOSTS && m.hosts !== BIG,
      )
    : [];
  const ctx = { layout, tag, w, key, cleanups };
  const write = async (complete: boolean) => {
    const report: BenchReport = {
      name: 'p2p',
      title: `P2P: ${HOSTS} namespaced hosts cold-start one image at once`,
      date: new Date().toISOString(),
      node: process.version,
      machine: { cpus: cpus().length, loadavg_start: loadStart, loadavg_end: loadavg() },
      setup: {
        workload: w.cmd,
        image: `${tag} (Debian bookworm${tag === TAG ? ' + python3' : ' minbase'}, converted by dadi convert)`,
        uplink_mbit: UPLINK,
        host_mbit: HOST_LINK,
        registry_rtt_ms: RTT,
        fanout: FANOUT,
        network:
          'one bridge in its own namespace; registry, root and every host in their own namespaces on veth pairs shaped with tbf on both ends; the registry behind a counting proxy on its node (bytes = HTTP response bodies the registry sent)',
        timing:
          'from the common start until each container printed its first line; page cache dropped before every run',
        cold: 'every run starts every daemon (and the root) anew on empty caches',
        build,
      },
      unavailable,
      complete,
      ...summarizeFaults(HOSTS, results, cpus().length),
      modes: [...results, ...others].sort((a, b) => a.hosts - b.hosts),
      total_s: (performance.now() - started) / 1000,
    };
    await mkdir(values.out!, { recursive: true });
    await writeFile(join(values.out!, `${values.name}.json`), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(join(values.out!, `${values.name}.md`), renderMarkdown(report));
    await writeFile(join(values.out!, `${values.name}.svg`), renderSvg(report));
    return report;
  };
  try {
    if (values['big-only']) {
      if (BIG === undefined) throw new Error('--big-only needs --big');
      const kept = (JSON.parse(await readFile(reportPath, 'utf8')) as BenchReport).modes.filter(
        (m) => m.hosts === HOSTS,
      );
      if (kept.length === 0) throw new Error(`--big-only: ${reportPath} has no ${HOSTS}-host runs to keep`);
      results.push(...kept);
    } else {
      for (const m of modes) {
        results.push(await runMode(m, HOSTS, !values['no-faults'], ctx));
        await write(false);
      }
    }
    if (BIG !== undefined) {
      for (const m of modes) {
        results.push(await runMode(m, BIG, false, ctx));
        await write(false);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  console.log(renderMarkdown(await write(true)));
}

await main();
