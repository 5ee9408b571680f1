// The real-process scale test (issue #14): one docker-registry and one `dadi p2p root` on loopback,
// and N agent processes (agent-proc.mjs: the daemon's P2P agent, own port and cache each) that all
// fetch one blob through the tree at once. Measures the time until all have the blob (every copy
// checked against its digest), the root's CPU and memory, and the bytes agents got by source.
// Writes docs/bench/scale-agents.json (run.ts folds it into the scale report). Every process it
// starts is stopped by PID, and its folders removed, also on failure or Ctrl-C.
//
//   node --import tsx bench/scale/agents.ts [--agents 20,200] [--mib 16]
//   node --import tsx bench/scale/agents.ts --host-cost     # one agent's CPU per chunk
//   DADI_BENCH_CLI=…/dist/cli/entry.js node --import tsx bench/scale/agents.ts   # reuse a built CLI

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { CHUNK_SIZE } from '../../src/p2p/chunks.js';
import { type BlobRef, blobQuery, HEADERS, type JoinAnswer, PATHS } from '../../src/swarm/protocol.js';
import { startRegistry, type TestRegistry } from '../../test/integration/registry-harness.js';
import { buildCli, REPO_ROOT } from '../coldstart/image.js';
import type { AgentRun, HostCost, JoinCost, RealAgents } from './render.js';

const { values } = parseArgs({
  options: {
    /** One run per count, each with a fresh registry and root; two or more give per-peer slopes. */
    agents: { type: 'string', default: '20,200' },
    mib: { type: 'string', default: '16' },
    /**
     * The agents' chunk deadline. On one loaded machine a slow answer is CPU contention, not a slow
     * link: a long deadline keeps the agents on the tree instead of stampeding the registry.
     */
    'chunk-timeout-ms': { type: 'string', default: '60000' },
    /**
     * Measure one agent's CPU per chunk instead: 5 agents fetch a small and a large blob, and the
     * per-agent CPU is fitted as fixed + per chunk (written to docs/bench/scale-host-cost.json).
     */
    'host-cost': { type: 'boolean', default: false },
    /** Write a CPU profile of each root (node --cpu-prof) into this folder. */
    'profile-root': { type: 'string' },
    /** Joins of distinct hosts sent straight to the root (its CPU and memory per peer, no chunk traffic). */
    joins: { type: 'string', default: '2000' },
    /** Only the joins run (join, fill and warm-serve CPU), printed, nothing written: for profiling the root. */
    'joins-only': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const COUNTS = values.agents!.split(',').map(Number);
const SIZE = Number(values.mib) << 20;
const HOST_COST = values['host-cost'] === true;
const OUT =
  values.out ?? join(REPO_ROOT, HOST_COST ? 'docs/bench/scale-host-cost.json' : 'docs/bench/scale-agents.json');
const CHUNK_TIMEOUT_MS = Number(values['chunk-timeout-ms']);
const REPO = 'scale/blob';
/** Bounds on waiting (the test never hangs). */
const READY_MS = 600_000;
const RUN_MS = 900_000;
/** Agents started at once: 200 node processes loading at the same moment would starve the root. */
const SPAWN_BATCH = 10;
/** A run starts once the load average is below this, or after waiting this long. */
const QUIET_LOAD = 1.5;
const QUIET_WAIT_MS = 90_000;

const children = new Set<ChildProcess>();
/** Signal every process this run started (by PID) that is still running. */
const signalAll = (signal: NodeJS.Signals) => signalSome(children, signal);
/** Signal the given processes (by PID) that are still running. */
function signalSome(procs: Iterable<ChildProcess>, signal: NodeJS.Signals): void {
  for (const c of procs) {
    if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
    try {
      process.kill(c.pid, signal);
    } catch {
      // It exited meanwhile.
    }
  }
}

/** utime + stime of a process in seconds, and its RSS in MB (Linux /proc). */
function usage(pid: number): { cpu: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpu = (Number(f[11]) + Number(f[12])) / 100;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpu, rssMb: Number(m?.[1] ?? 0) / 1024 };
}

/** Put `data` into the registry's storage as a blob of REPO (what a push leaves behind). */
async function seedBlob(reg: TestRegistry, data: Uint8Array): Promise<string> {
  const hex = createHash('sha256').update(data).digest('hex');
  const v2 = join(reg.dir, 'storage/docker/registry/v2');
  await mkdir(join(v2, 'blobs/sha256', hex.slice(0, 2), hex), { recursive: true });
  await writeFile(join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), data);
  await mkdir(join(v2, 'repositories', REPO, '_layers/sha256', hex), { recursive: true });
  await writeFile(join(v2, 'repositories', REPO, '_layers/sha256', hex, 'link'), `sha256:${hex}`);
  return `sha256:${hex}`;
}

function lineReader(c: ChildProcess): () => Promise<string> {
  const lines = createInterface({ input: c.stdout! });
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => (waiting.length ? waiting.shift()!(l) : queue.push(l)));
  // An agent that dies before it reports answers for itself, so the run fails at once, not at the deadline.
  const died = JSON.stringify({ ok: false, error: 'the agent process exited' });
  lines.on('close', () => {
    queue.push(died);
    for (const w of waiting.splice(0)) w(died);
  });
  return () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiting.push(r)));
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))),
  ]);
}

interface AgentResult {
  ms: number;
  ok: boolean;
  error?: string;
  bytes: Record<string, number>;
  chunks: number;
  served: number;
  fallbacks: number;
}

/** Start the root on `reg` and wait for its URL. */
async function startRoot(entry: string, cacheDir: string): Promise<{ root: ChildProcess; url: string }> {
  const profile = values['profile-root'] ? ['--cpu-prof', '--cpu-prof-dir', values['profile-root']] : [];
  const root = spawn(
    process.execPath,
    [...profile, entry, 'p2p', 'root', '--listen', '127.0.0.1:0', '--cache', cacheDir, '--insecure'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  children.add(root);
  const url = await within(
    new Promise<string>((resolve, reject) => {
      let err = '';
      root.stderr!.on('data', (d: Buffer) => {
        // Keep only the start of the log: the root logs every report and would fill memory.
        if (err.length < 64 << 10) err += d.toString();
        const m = /listening on (\S+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      root.once('exit', (code) => reject(new Error(`dadi p2p root exited (${code}): ${err}`)));
    }),
    60_000,
    'dadi p2p root',
  );
  return { root, url };
}

/**
 * The 1-minute load average once it is below QUIET_LOAD (the previous run's processes, or anyone's,
 * settle), waiting at most QUIET_WAIT_MS: a run's own processes then raise it, others' should not.
 */
async function quietLoad(): Promise<number> {
  const until = performance.now() + QUIET_WAIT_MS;
  while (loadavg()[0]! > QUIET_LOAD && performance.now() < until) await new Promise((r) => setTimeout(r, 2000));
  const load = loadavg()[0]!;
  console.error(`load average ${load.toFixed(2)} at the start of a run`);
  return load;
}

/** One run: a fresh registry, root and `n` agents fetching one blob at once; every process stopped after. */
async function runOnce(n: number, size: number, entry: string, dist: string): Promise<AgentRun> {
  const loadBefore = await quietLoad();
  const work = await mkdtemp(join(tmpdir(), 'dadi-scale-agents-'));
  const mine = new Set<ChildProcess>();
  let reg: TestRegistry | undefined;
  try {
    reg = await startRegistry();
    const digest = await seedBlob(reg, randomBytes(size));
    const { root, url: rootUrl } = await startRoot(entry, join(work, 'root-cache'));
    mine.add(root);
    console.error(`${n} agents: root ${rootUrl} (pid ${root.pid})`);
    const agents: { c: ChildProcess; next: () => Promise<string> }[] = [];
    for (let i = 0; i < n; i += SPAWN_BATCH) {
      const batch: typeof agents = [];
      for (let k = i; k < Math.min(n, i + SPAWN_BATCH); k++) {
        const args = [dist, rootUrl, reg.host, REPO, digest, String(size), `agent${k}`, join(work, `cache${k}`)];
        const c = spawn(
          process.execPath,
          ['--max-old-space-size=96', join(REPO_ROOT, 'bench/scale/agent-proc.mjs'), ...args, String(CHUNK_TIMEOUT_MS)],
          { stdio: ['pipe', 'pipe', 'inherit'] },
        );
        children.add(c);
        mine.add(c);
        batch.push({ c, next: lineReader(c) });
      }
      for (const a of batch) {
        const l = await within(a.next(), READY_MS, 'agent start');
        if (l !== 'ready') throw new Error(`agent said ${l}`);
      }
      agents.push(...batch);
    }
    const agentCpu = () => agents.reduce((sum, a) => sum + usage(a.c.pid!).cpu, 0);
    const before = usage(root.pid!);
    const agentsBefore = agentCpu();
    let peak = before.rssMb;
    let rootGone = false;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, usage(root.pid!).rssMb);
      } catch {
        rootGone = true;
      }
    }, 100);
    const t0 = performance.now();
    let results: AgentResult[];
    try {
      for (const a of agents) a.c.stdin!.write('go\n');
      results = await within(
        Promise.all(agents.map((a) => a.next().then((l) => JSON.parse(l) as AgentResult))),
        RUN_MS,
        'agents fetching',
      );
    } finally {
      clearInterval(sampler);
    }
    const wall = (performance.now() - t0) / 1000;
    if (rootGone || root.exitCode !== null) throw new Error('dadi p2p root exited during the run');
    // Every agent has the blob, so no one is serving any more: their CPU since `go` is the fetch's.
    const agentCpuS = agentCpu() - agentsBefore;
    const after = usage(root.pid!);
    peak = Math.max(peak, after.rssMb);
    const bad = results.filter((r) => !r.ok);
    if (bad.length > 0) {
      throw new Error(
        `${bad.length} agents failed (wrong bytes or errors), e.g. ${bad[0]!.error ?? 'digest mismatch'}`,
      );
    }
    const sum = (f: (r: AgentResult) => number) => results.reduce((a, r) => a + f(r), 0);
    const times = results.map((r) => r.ms / 1000).sort((a, b) => a - b);
    const run: AgentRun = {
      agents: n,
      blob_bytes: size,
      all_finished_s: wall,
      slowest_agent_s: times[times.length - 1]!,
      median_agent_s: times[times.length >> 1]!,
      root_cpu_s: after.cpu - before.cpu,
      root_rss_mb_idle: before.rssMb,
      root_rss_mb_peak: peak,
      agent_cpu_s: agentCpuS,
      agent_chunks: sum((r) => r.chunks),
      agent_cpu_ms_per_chunk:
        (agentCpuS * 1000) /
        Math.max(
          1,
          sum((r) => r.chunks),
        ),
      bytes: {
        root: sum((r) => r.bytes.root ?? 0),
        peer: sum((r) => r.bytes.peer ?? 0),
        registry: sum((r) => r.bytes.registry ?? 0),
      },
      fallbacks: sum((r) => r.fallbacks),
      load_average: loadavg()[0]!,
      load_average_before: loadBefore,
    };
    console.error(JSON.stringify(run));
    return run;
  } finally {
    for (const c of mine) c.stdin?.end();
    signalSome(mine, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 2000));
    signalSome(mine, 'SIGKILL');
    for (const c of mine) children.delete(c);
    await reg?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The root alone under `n` joins of distinct hosts for one blob (16 at a time, keep-alive): its CPU
 * and RSS per join, i.e. per peer, without the chunk serving the fetch runs mix in. Measured on a
 * root that has served before (a root runs for days): a warm-up round first (other hosts joining
 * two other blobs, fills of two other blobs) whose first round's CPU is what a just-started root pays once more
 * (compiling its code, growing its heap and buffer pool), reported apart as `warmup`.
 */
async function measureJoins(n: number, entry: string): Promise<JoinCost> {
  const loadBefore = await quietLoad();
  const work = await mkdtemp(join(tmpdir(), 'dadi-scale-joins-'));
  const mine = new Set<ChildProcess>();
  let reg: TestRegistry | undefined;
  try {
    reg = await startRegistry();
    const { root, url } = await startRoot(entry, join(work, 'root-cache'));
    mine.add(root);
    const newBlob = async (): Promise<BlobRef> => ({
      registry: reg!.host,
      repository: REPO,
      digest: await seedBlob(reg!, randomBytes(1 << 20)),
    });
    const joinAs = async (host: string, b: BlobRef): Promise<JoinAnswer> => {
      const body = {
        blob: b,
        host: { id: host, address: `http://127.0.0.2:${1024 + (hostNumber(host) % 60000)}`, upload: 1 },
      };
      const res = await request(`${url}${PATHS.join}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`join ${host}: ${res.statusCode} ${text}`);
      return JSON.parse(text) as JoinAnswer;
    };
    /** `n` hosts named prefix0… join blob `b`: the root's CPU in ms per join, and its RSS before and after. */
    const joinAll = async (prefix: string, b: BlobRef) => {
      await joinAs('access-check', b); // the registry access check, cached for the rest
      const before = usage(root.pid!);
      const t0 = performance.now();
      let next = 0;
      await within(
        Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < n) await joinAs(`${prefix}${next++}`, b);
          }),
        ),
        RUN_MS,
        'joins',
      );
      const wall = (performance.now() - t0) / 1000;
      const after = usage(root.pid!);
      return { ms: ((after.cpu - before.cpu) * 1000) / n, wall, rssBefore: before.rssMb, rssAfter: after.rssMb };
    };
    // The warm-up has a start's shape: its hosts join two layers, and two blobs are filled.
    const cold = await joinAll('warmup', await newBlob());
    await joinAll('warmup', await newBlob());
    const coldFill = await fillOnce(url, reg, root.pid!, joinAs);
    await fillOnce(url, reg, root.pid!, joinAs);
    const first = await joinAll('peer', await newBlob());
    // The same hosts join a second layer, as every host of a start joins each layer's tree.
    const second = await joinAll('peer', await newBlob());
    const serving = await measureServing(url, reg, root.pid!, joinAs);
    const cost: JoinCost = {
      joins: n,
      wall_s: first.wall,
      root_cpu_ms_per_join: first.ms,
      root_cpu_ms_per_join_second_layer: second.ms,
      // The per-peer state from the warm-up round: the heap grows there, later rounds reuse it.
      root_rss_mb_before: cold.rssBefore,
      root_rss_mb_after: cold.rssAfter,
      root_kb_per_peer: ((cold.rssAfter - cold.rssBefore) * 1024) / n,
      ...serving,
      warmup: { joins: n, root_cpu_ms_per_join: cold.ms, root_cpu_ms_fill_per_chunk: coldFill.ms },
      load_average: loadavg()[0]!,
      load_average_before: loadBefore,
    };
    console.error(JSON.stringify(cost));
    return cost;
  } finally {
    // SIGTERM first: the root exits cleanly and writes its CPU profile (--profile-root), if asked.
    signalSome(mine, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 2000));
    signalSome(mine, 'SIGKILL');
    await reg?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** The number in a host name (peer17 → 17), for a distinct made-up address. */
function hostNumber(host: string): number {
  return Number(/\d+$/.exec(host)?.[0] ?? 0);
}

type JoinAs = (host: string, b: BlobRef) => Promise<JoinAnswer>;

/** Chunks of the serving blob, and how many times each is read from the warm cache. */
const SERVE_CHUNKS = 16;
const SERVE_ROUNDS = 8;

/** A new blob read once from the root, 16 chunks at a time: its ref and the root's CPU per chunk filled. */
async function fillOnce(
  url: string,
  reg: TestRegistry,
  pid: number,
  joinAs: JoinAs,
): Promise<{ ref: BlobRef & { grant: string }; ms: number }> {
  const ref = await serveBlob(reg, joinAs);
  const c0 = usage(pid).cpu;
  await readChunks(url, ref, SERVE_CHUNKS);
  return { ref, ms: ((usage(pid).cpu - c0) * 1000) / SERVE_CHUNKS };
}

/**
 * The root's CPU for chunks apart from joins: once filling its cache (the registry fetch and the
 * cache write, paid once per blob however many peers there are) and then serving the same chunks
 * from its warm cache, 16 requests at a time (paid per chunk served: the per-peer part).
 */
async function measureServing(
  url: string,
  reg: TestRegistry,
  pid: number,
  joinAs: JoinAs,
): Promise<
  Pick<
    JoinCost,
    | 'root_cpu_ms_fill_per_chunk'
    | 'root_cpu_ms_fill_per_chunk_second_blob'
    | 'root_cpu_ms_per_served_chunk'
    | 'served_chunks'
  >
> {
  // Two blobs, as a start's two layers.
  const first = await fillOnce(url, reg, pid, joinAs);
  const second = await fillOnce(url, reg, pid, joinAs);
  const c1 = usage(pid).cpu;
  await readChunks(url, second.ref, SERVE_CHUNKS * SERVE_ROUNDS);
  const c2 = usage(pid).cpu;
  return {
    root_cpu_ms_fill_per_chunk: first.ms,
    root_cpu_ms_fill_per_chunk_second_blob: second.ms,
    root_cpu_ms_per_served_chunk: ((c2 - c1) * 1000) / (SERVE_CHUNKS * SERVE_ROUNDS),
    served_chunks: SERVE_CHUNKS * SERVE_ROUNDS,
  };
}

/** A new blob of SERVE_CHUNKS chunks in the registry, joined by one host: its ref and grant. */
async function serveBlob(reg: TestRegistry, joinAs: JoinAs): Promise<BlobRef & { grant: string }> {
  const ref: BlobRef = {
    registry: reg.host,
    repository: REPO,
    digest: await seedBlob(reg, randomBytes(SERVE_CHUNKS * CHUNK_SIZE)),
  };
  const { grant } = await joinAs('reader', ref);
  return { ...ref, grant };
}

/** Read `n` chunks of `ref` from the root, 16 at a time, cycling over its chunks. */
async function readChunks(url: string, ref: BlobRef & { grant: string }, n: number): Promise<void> {
  const blob: BlobRef = { registry: ref.registry, repository: ref.repository, digest: ref.digest };
  const get = async (chunk: number) => {
    const res = await request(`${url}${PATHS.blob}?${blobQuery(blob)}`, {
      headers: { range: `bytes=${chunk * CHUNK_SIZE}-${(chunk + 1) * CHUNK_SIZE - 1}`, [HEADERS.grant]: ref.grant },
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
    const got = (await res.body.arrayBuffer()).byteLength;
    if (res.statusCode !== 206 || got !== CHUNK_SIZE)
      throw new Error(`chunk ${chunk}: ${res.statusCode}, ${got} bytes`);
  };
  let next = 0;
  await within(
    Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < n) await get(next++ % SERVE_CHUNKS);
      }),
    ),
    RUN_MS,
    'chunk reads',
  );
}

/** The slope and intercept of `y` over `x` (least squares). */
function fitLine(xs: number[], ys: number[]): { slope: number; intercept: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const sxy = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

async function main(): Promise<void> {
  process.once('SIGINT', () => {
    signalAll('SIGKILL');
    process.exit(130);
  });
  // DADI_BENCH_CLI names a CLI built before (e.g. outside a timed, exclusive run); else build one.
  if (!process.env.DADI_BENCH_CLI || !existsSync(process.env.DADI_BENCH_CLI)) await buildCli('dadi-scale');
  const entry = process.env.DADI_BENCH_CLI!;
  const dist = join(entry, '../..');
  if (HOST_COST) return measureHostCost(entry, dist);
  if (values['joins-only']) {
    console.log(JSON.stringify(await measureJoins(Number(values.joins), entry), null, 2));
    return;
  }
  // The joins run first: after 200 agents the machine takes minutes to settle (the load average
  // decays from ~150, the last run's memory is handed back), and the root's figures come from it.
  const joins = await measureJoins(Number(values.joins), entry);
  const runs: AgentRun[] = [];
  for (const n of COUNTS) runs.push(await runOnce(n, SIZE, entry, dist));
  const xs = runs.map((r) => r.agents);
  // With one run the whole growth over the idle root is charged to its peers (an upper bound).
  const cpu =
    runs.length > 1
      ? fitLine(
          xs,
          runs.map((r) => r.root_cpu_s),
        )
      : { slope: runs[0]!.root_cpu_s / xs[0]!, intercept: 0 };
  const rss =
    runs.length > 1
      ? fitLine(
          xs,
          runs.map((r) => r.root_rss_mb_peak),
        )
      : {
          slope: (runs[0]!.root_rss_mb_peak - runs[0]!.root_rss_mb_idle) / xs[0]!,
          intercept: runs[0]!.root_rss_mb_idle,
        };
  const largest = runs.reduce((a, r) => (r.agents > a.agents ? r : a));
  const chunks = runs.reduce((a, r) => a + r.agent_chunks, 0);
  const report: RealAgents = {
    agents: largest.agents,
    blob_bytes: SIZE,
    chunk_timeout_ms: CHUNK_TIMEOUT_MS,
    runs,
    root_cpu_s_per_peer: cpu.slope,
    root_cpu_s_fixed: cpu.intercept,
    root_mb_per_peer: rss.slope,
    root_mb_fixed: rss.intercept,
    joins,
    root_cpu_s_per_1000_peers: cpu.intercept + 1000 * cpu.slope,
    root_mb_per_1000_peers: rss.intercept + 1000 * rss.slope,
    agent_cpu_ms_per_chunk: (runs.reduce((a, r) => a + r.agent_cpu_s, 0) * 1000) / Math.max(1, chunks),
    note:
      runs.length > 1
        ? `Root CPU seconds and peak RSS fitted as a line over the runs' agent counts (${xs.join(', ')}): per-peer = slope, fixed = intercept.`
        : 'One run: all of the root’s CPU and RSS growth charged to its peers (an upper bound).',
  };
  console.log(JSON.stringify(report, null, 2));
  await writeFile(OUT, `${JSON.stringify(report, null, 2)}\n`);
}

/** One agent's CPU: a fixed part (a fresh process's first use, join) and a part per chunk taken in. */
async function measureHostCost(entry: string, dist: string): Promise<void> {
  const runs: AgentRun[] = [];
  for (const mib of [16, 128]) runs.push(await runOnce(5, mib << 20, entry, dist));
  const line = fitLine(
    runs.map((r) => r.agent_chunks / r.agents),
    runs.map((r) => r.agent_cpu_s / r.agents),
  );
  const report: HostCost = {
    date: new Date().toISOString(),
    runs,
    agent_cpu_ms_per_chunk: line.slope * 1000,
    agent_fixed_cpu_s: line.intercept,
    note:
      'Per-agent CPU (utime + stime from `go` until every agent had the blob, serving its children included) ' +
      `fitted over chunks taken in per agent, 5 agents on a ${runs.map((r) => `${r.blob_bytes >> 20} MiB`).join(' and a ')} blob ` +
      `(load average ${runs.map((r) => r.load_average.toFixed(1)).join(', ')}).`,
  };
  console.log(JSON.stringify(report, null, 2));
  await writeFile(OUT, `${JSON.stringify(report, null, 2)}\n`);
}

await main();
