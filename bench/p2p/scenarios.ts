// What the P2P benchmark and its test do with a cluster (cluster.ts): every host cold-starts the
// same container at once, optionally while a fault is made, and the outcome is measured from the
// outside: each container's stdout against the expected bytes, the time each first printed, the
// registry's egress at its node, and every host's upload from its veth counters.

import { readFile, writeFile } from 'node:fs/promises';
import { sh, sleep, type TimedRun } from '../coldstart/util.js';
import { AGENT_PORT, type Cluster, ROOT_PORT } from './cluster.js';
import { cpuByCommand, cpuSnapshot } from './cpu-by-command.js';

export interface Workload {
  name: string;
  cmd: string[];
  /** The stdout line that marks the start (the clock stops there). */
  firstLine: string;
  /** The container's whole expected stdout. */
  expected: string;
}

export interface HostOutcome {
  host: number;
  /** Seconds from the common start until the first line (undefined: never printed it). */
  firstOutputS?: number;
  code: number;
  /** Bytes of stdout that differ from the expected output (plus any length difference). */
  wrongBytes: number;
  /** Bytes the host's link sent (to peers) and received during the run. */
  uploadBytes: number;
  downloadBytes: number;
  /** A host the fault took out (killed), or that has no access: not expected to print. */
  excused?: string;
  stderrTail?: string;
}

export interface StartOutcome {
  hosts: number;
  p2p: boolean;
  fault: string;
  /** Seconds until the last counted host printed (undefined when some never did). */
  allStartedS?: number;
  firstStartedS?: number;
  registryBytes: number;
  registryRequests: number;
  wrongBytes: number;
  /** Hosts (not excused) that did not print the expected output. */
  stuckHosts: number;
  perHost: HostOutcome[];
  /** Fault details (which hosts were killed, when the root went down, …). */
  notes: string[];
  /** Share of the machine's CPU time that was busy during the run (1 = every core saturated). */
  cpuBusy: number;
  /** CPU seconds used during the run: by all the daemons, by the root, by everything on the machine. */
  cpuSeconds?: { daemons: number; root: number; machine: number };
  /** The same CPU seconds by command name, largest first (cpu-by-command.ts). */
  cpuByCommand?: Array<{ command: string; cpuS: number }>;
  /** With P2P: where the bytes came from, summed from the root's and every agent's counters. */
  tally?: P2PTally;
}

/** The root's and the agents' counters after a run (agents that do not answer are left out). */
export interface P2PTally {
  /** Bytes the root read from the registry for peers. */
  rootRegistryBytes: number;
  rootServedBytes: number;
  /** Summed over the agents that answered. */
  agents: number;
  agentBytes: { registry: number; root: number; peer: number };
  agentFailures: { registry: number; root: number; peer: number };
  registryFallbacks: number;
  corruptChunks: number;
  reparents: number;
  pushedBytes: number;
}

/** Busy and total CPU time of the machine so far (jiffies, from /proc/stat). */
async function cpuTimes(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  // idle + iowait
  return { busy: total - v[3]! - (v[4] ?? 0), total };
}

/** CPU seconds (user + system) process `pid` used so far; 0 once it is gone. */
async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command (which may hold spaces) in parentheses; utime and stime are 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return f.length > 13 ? (Number(f[11]) + Number(f[12])) / 100 : 0;
}

/** CPU seconds each daemon and the root used so far, by PID. */
async function clusterCpu(c: Cluster): Promise<{ daemons: Map<number, number>; root: Map<number, number> }> {
  const p = c.pids();
  const of = async (pids: number[]) =>
    new Map(await Promise.all(pids.map(async (x) => [x, await cpuSecondsOf(x)] as const)));
  return { daemons: await of(p.daemons), root: await of(p.root ? [p.root] : []) };
}

/** CPU seconds used between two readings, by processes alive at the first (a gone one counts 0). */
function cpuUsed(before: Map<number, number>, after: Map<number, number>): number {
  let s = 0;
  for (const [pid, t] of before) s += Math.max(0, (after.get(pid) ?? t) - t);
  return s;
}

/** A fault made while the hosts start; `excuse` marks hosts it took out. */
export interface Fault {
  name: string;
  run(f: FaultContext): Promise<void>;
}

export interface FaultContext {
  cluster: Cluster;
  t0: number;
  /** Resolves when all runs ended (a fault waiting for a moment gives up then). */
  finished: Promise<void>;
  excuse(host: number, why: string): void;
  note(msg: string): void;
  /** Bytes each host's link sent since the start. */
  uploads(): Promise<number[]>;
}

export function wrongBytes(got: string, expected: string): number {
  const a = Buffer.from(got);
  const b = Buffer.from(expected);
  let n = Math.abs(a.length - b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) n++;
  return n;
}

export async function dropCaches(): Promise<void> {
  await sh('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3\n');
}

/**
 * Fresh state for a cold start: every daemon stopped and its cache and state removed, then started
 * again; with P2P the root restarted on an empty cache too.
 */
export async function coldCluster(c: Cluster): Promise<void> {
  await c.stopHosts({ wipe: true });
  if (c.opts.p2p) {
    await c.killRoot();
    await c.startRoot({ emptyCache: true });
  }
  await c.startHosts();
}

/** Every host (or `hosts`) runs the workload at once; `fault` acts meanwhile. */
export async function startAll(
  c: Cluster,
  ref: string,
  w: Workload,
  opts: {
    fault?: Fault;
    hosts?: number[];
    timeoutMs?: number;
    /** Start this host first; the others once it has joined a tree (P2P) or 1 s later. */
    first?: number;
  } = {},
): Promise<StartOutcome> {
  const hosts = opts.hosts ?? Array.from({ length: c.hosts }, (_, i) => i);
  const excused = new Map<number, string>();
  for (const i of c.opts.noAccess ?? []) excused.set(i, 'no registry access');
  const notes: string[] = [];
  const linkBefore = await Promise.all(hosts.map((i) => c.net.linkBytes(c.net.hostNs(i))));
  const uploads = async () =>
    (await Promise.all(hosts.map((i) => c.net.linkBytes(c.net.hostNs(i))))).map((b, k) => b.tx - linkBefore[k]!.tx);
  await dropCaches();
  c.resetRegistryStats();
  const cpuBefore = await cpuTimes();
  const clusterBefore = await clusterCpu(c);
  const procsBefore = await cpuSnapshot();
  const t0 = performance.now();
  const start = (i: number) => c.run(i, ref, w.cmd, w.firstLine, { t0, timeoutMs: opts.timeoutMs });
  let runs: Promise<TimedRun>[];
  if (opts.first === undefined) runs = hosts.map(start);
  else {
    // The first host joins the trees before the others ask: it gets a place high in them.
    const first = start(opts.first);
    const joined = c.opts.p2p
      ? await waitUntil(() => rootMembers(c).then((n) => n > 0), first, 60_000)
      : await sleep(1000).then(() => true);
    if (!joined) notes.push(`host ${opts.first} had not joined a tree when the others started`);
    runs = hosts.map((i) => (i === opts.first ? first : start(i)));
  }
  const finished = Promise.allSettled(runs).then(() => {});
  const faultDone = opts.fault?.run({
    cluster: c,
    t0,
    finished,
    excuse: (h, why) => excused.set(h, why),
    note: (m) => notes.push(m),
    uploads,
  });
  const results = await Promise.all(runs);
  await faultDone;
  const cpuAfter = await cpuTimes();
  const clusterAfter = await clusterCpu(c);
  const procsAfter = await cpuSnapshot();
  const reg = await c.registryStats();
  const linkAfter = await Promise.all(hosts.map((i) => c.net.linkBytes(c.net.hostNs(i))));
  const perHost: HostOutcome[] = results.map((r, k) => {
    const host = hosts[k]!;
    const o: HostOutcome = {
      host,
      code: r.code,
      wrongBytes: r.code === 0 ? wrongBytes(r.stdout, w.expected) : 0,
      uploadBytes: linkAfter[k]!.tx - linkBefore[k]!.tx,
      downloadBytes: linkAfter[k]!.rx - linkBefore[k]!.rx,
    };
    if (r.firstOutputS !== undefined) o.firstOutputS = r.firstOutputS;
    if (excused.has(host)) o.excused = excused.get(host)!;
    if (r.code !== 0) o.stderrTail = r.stderr.trim().slice(-400);
    return o;
  });
  const counted = perHost.filter((h) => !h.excused);
  const ok = (h: HostOutcome) => h.code === 0 && h.firstOutputS !== undefined && h.wrongBytes === 0;
  const times = counted.map((h) => h.firstOutputS).filter((s): s is number => s !== undefined);
  const stuck = counted.filter((h) => h.code !== 0 || h.firstOutputS === undefined).length;
  const out: StartOutcome = {
    hosts: hosts.length,
    p2p: c.opts.p2p,
    fault: opts.fault?.name ?? 'none',
    registryBytes: reg.responseBodyBytes,
    registryRequests: reg.requests,
    wrongBytes: perHost.reduce((a, h) => a + h.wrongBytes, 0),
    stuckHosts: stuck,
    perHost,
    notes,
    cpuBusy: (cpuAfter.busy - cpuBefore.busy) / Math.max(1, cpuAfter.total - cpuBefore.total),
    cpuSeconds: {
      daemons: cpuUsed(clusterBefore.daemons, clusterAfter.daemons),
      root: cpuUsed(clusterBefore.root, clusterAfter.root),
      machine: (cpuAfter.busy - cpuBefore.busy) / 100,
    },
    cpuByCommand: cpuByCommand(procsBefore, procsAfter),
  };
  if (c.opts.p2p) out.tally = await p2pTally(c, hosts);
  if (times.length) out.firstStartedS = Math.min(...times);
  if (counted.length && counted.every(ok)) out.allStartedS = Math.max(...times);
  return out;
}

/** GET a JSON status page from inside namespace `ns`; undefined when it does not answer. */
async function statusOf(ns: string, url: string): Promise<Record<string, unknown> | undefined> {
  const r = await sh('curl', ['-sf', '-m', '5', url], { netns: ns, allowFail: true });
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

interface CountersJson {
  bytes: Record<'registry' | 'root' | 'peer', number>;
  failures: Record<'registry' | 'root' | 'peer', number>;
  registryFallbacks: number;
  corruptChunks: number;
  reparents: number;
  pushedBytes: number;
  servedBytes: number;
}

/** Sum the root's and the agents' P2P counters (what each read from where). */
async function p2pTally(c: Cluster, hosts: number[]): Promise<P2PTally> {
  const root = (await statusOf(c.net.rootNs, `http://${c.net.rootAddr}:${ROOT_PORT}/p2p/v1/status`))?.counters as
    | CountersJson
    | undefined;
  const t: P2PTally = {
    rootRegistryBytes: root?.bytes.registry ?? 0,
    rootServedBytes: root?.servedBytes ?? 0,
    agents: 0,
    agentBytes: { registry: 0, root: 0, peer: 0 },
    agentFailures: { registry: 0, root: 0, peer: 0 },
    registryFallbacks: 0,
    corruptChunks: 0,
    reparents: 0,
    pushedBytes: 0,
  };
  const agents = await Promise.all(
    hosts.map((i) => statusOf(c.net.hostNs(i), `http://${c.net.hostAddr(i)}:${AGENT_PORT}/p2p/v1/status`)),
  );
  for (const a of agents) {
    const k = a?.counters as CountersJson | undefined;
    if (!k) continue;
    t.agents++;
    for (const s of ['registry', 'root', 'peer'] as const) {
      t.agentBytes[s] += k.bytes[s];
      t.agentFailures[s] += k.failures[s];
    }
    t.registryFallbacks += k.registryFallbacks;
    t.corruptChunks += k.corruptChunks;
    t.reparents += k.reparents;
    t.pushedBytes += k.pushedBytes;
  }
  return t;
}

/** Hosts in the root's trees, summed over blobs (0 when it does not answer). */
export async function rootMembers(c: Cluster): Promise<number> {
  const r = await sh('curl', ['-sf', '-m', '5', `http://${c.net.rootAddr}:${ROOT_PORT}/p2p/v1/status`], {
    netns: c.net.rootNs,
    allowFail: true,
  });
  if (r.code !== 0) return 0;
  const status = JSON.parse(r.stdout) as { blobs?: { hosts: number }[] };
  return (status.blobs ?? []).reduce((a, b) => a + b.hosts, 0);
}

/** Poll `cond` every 100 ms until it holds (true), `over` settles or `ms` pass (false). */
async function waitUntil(cond: () => Promise<boolean>, over: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void over.finally(() => (done = true)).catch(() => {});
  const until = performance.now() + ms;
  while (!done && performance.now() < until) {
    if (await cond()) return true;
    await sleep(100);
  }
  return false;
}

/** Wait (bounded by the runs' end) until `cond()` holds, polling every 100 ms. */
function waitFor(f: FaultContext, cond: () => Promise<boolean>): Promise<boolean> {
  return waitUntil(cond, f.finished, Number.POSITIVE_INFINITY);
}

/** When the registry has sent `bytes`: the transfer is under way. */
function midTransfer(f: FaultContext, bytes: number): Promise<boolean> {
  return waitFor(f, async () => (await f.cluster.registryStats()).responseBodyBytes >= bytes);
}

/**
 * Kill `count` parents mid-transfer: once the registry has sent `afterBytes`, the hosts that have
 * uploaded the most so far (the ones serving children) are SIGKILLed.
 */
export function killParents(count: number, afterBytes: number): Fault {
  return {
    name: `kill ${count} parents mid-transfer`,
    async run(f) {
      if (!(await midTransfer(f, afterBytes))) return f.note('the runs ended before the transfer reached the mark');
      const up = await f.uploads();
      const noAccess = new Set(f.cluster.opts.noAccess ?? []);
      const victims = up
        .map((bytes, host) => ({ host, bytes }))
        .filter((x) => !noAccess.has(x.host))
        .sort((a, b) => b.bytes - a.bytes)
        .slice(0, count);
      for (const v of victims) {
        f.excuse(v.host, 'killed');
        await f.cluster.killDaemon(v.host);
        f.note(`killed host ${v.host} (uploaded ${v.bytes} B) at ${((performance.now() - f.t0) / 1000).toFixed(2)} s`);
      }
    },
  };
}

/** Kill the root mid-transfer and start it again `downMs` later, on the same cache. */
export function restartRoot(afterBytes: number, downMs: number): Fault {
  return {
    name: 'restart the root mid-run',
    async run(f) {
      if (!(await midTransfer(f, afterBytes))) return f.note('the runs ended before the transfer reached the mark');
      await f.cluster.killRoot();
      const at = (performance.now() - f.t0) / 1000;
      await sleep(downMs);
      await f.cluster.startRoot();
      f.note(`root killed at ${at.toFixed(2)} s, serving again at ${((performance.now() - f.t0) / 1000).toFixed(2)} s`);
    },
  };
}

/** Reports of host `h{peer}` serving wrong bytes that reached the root (from its log). */
export async function corruptReports(c: Cluster, peer: number): Promise<number> {
  return (await c.rootLog()).split('\n').filter((l) => new RegExp(`reports h${peer} corrupt`).test(l)).length;
}

/** GET `url` (optionally with Range) from inside namespace `ns`: status and body bytes received. */
export async function probe(ns: string, url: string): Promise<{ status: number; bytes: number }> {
  const r = await sh(
    'curl',
    ['-s', '-m', '20', '-r', '0-1048575', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url],
    { netns: ns, allowFail: true },
  );
  const [status, bytes] = r.stdout.trim().split(' ').map(Number);
  return { status: status ?? 0, bytes: bytes ?? 0 };
}

export interface AccessProbe {
  target: string;
  url: string;
  status: number;
  /** Body bytes received with a success status (2xx). */
  bytes: number;
}

/**
 * What host `i` (without credentials) gets when it asks for `blobPath` (`/v2/REPO/blobs/DIGEST`)
 * itself: from the registry; with P2P also from the root's and a peer agent's chunk endpoint
 * (without a grant) and in overlaybd's proxy URL form from its own agent and a peer's (without
 * Authorization). Bytes count only with a success status.
 */
export async function accessProbes(c: Cluster, i: number, blobPath: string, peer: number): Promise<AccessProbe[]> {
  const ns = c.net.hostNs(i);
  const upstream = `http://${c.registryRef}${blobPath}`;
  const targets: [string, string][] = [['registry', upstream]];
  if (c.opts.p2p) {
    const m = /^\/v2\/(.+)\/blobs\/(.+)$/.exec(blobPath)!;
    const q = new URLSearchParams({ registry: c.registryRef, repository: m[1]!, digest: m[2]! });
    const agent = (h: number) => `http://${c.net.hostAddr(h)}:${AGENT_PORT}`;
    targets.push(
      ['root chunks, no grant', `http://${c.net.rootAddr}:${ROOT_PORT}/p2p/v1/blob?${q}`],
      [`peer ${peer} chunks, no grant`, `${agent(peer)}/p2p/v1/blob?${q}`],
      ['own agent, proxy URL form', `${agent(i)}/${upstream}`],
      [`peer ${peer} agent, proxy URL form`, `${agent(peer)}/${upstream}`],
    );
  }
  const out: AccessProbe[] = [];
  for (const [target, url] of targets) {
    const p = await probe(ns, url);
    out.push({ target, url, status: p.status, bytes: p.status >= 200 && p.status < 300 ? p.bytes : 0 });
  }
  return out;
}

/** The image's layer blob paths (`/v2/REPO/blobs/DIGEST`), read with the registry's account. */
export async function layerBlobPaths(c: Cluster, repo: string): Promise<string[]> {
  const { username, password } = c.opts.account;
  const accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
  const r = await sh(
    'curl',
    [
      '-sf',
      '-u',
      `${username}:${password}`,
      '-H',
      `Accept: ${accept}`,
      `http://${c.registryRef}/v2/${repo}/manifests/dadi`,
    ],
    { netns: c.net.rootNs },
  );
  const m = JSON.parse(r.stdout) as { layers: { digest: string }[] };
  return m.layers.map((l) => `/v2/${repo}/blobs/${l.digest}`);
}
