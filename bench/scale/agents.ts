// The real-process scale test (issue #14): one docker-registry and one `dadi p2p root` on loopback,
// and N agent processes (agent-proc.mjs: the daemon's P2P agent, own port and cache each) that all
// fetch one blob through the tree at once. Measures the time until all have the blob (every copy
// checked against its digest), the root's CPU and memory, and the bytes agents got by source.
// Writes docs/bench/scale-agents.json (run.ts folds it into the scale report). Every process it
// starts is stopped by PID, and its folders removed, also on failure or Ctrl-C.
//
//   node --import tsx bench/scale/agents.ts [--agents 200] [--mib 16]

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startRegistry, type TestRegistry } from '../../test/integration/registry-harness.js';
import { buildCli, REPO_ROOT } from '../coldstart/image.js';
import type { RealAgents } from './render.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '200' },
    mib: { type: 'string', default: '16' },
    out: { type: 'string', default: join(REPO_ROOT, 'docs/bench/scale-agents.json') },
  },
});
const AGENTS = Number(values.agents);
const SIZE = Number(values.mib) << 20;
const REPO = 'scale/blob';
/** Bounds on waiting (the test never hangs). */
const READY_MS = 600_000;
const RUN_MS = 600_000;

const children = new Set<ChildProcess>();
/** Signal every process this run started (by PID) that is still running. */
const signalAll = (signal: NodeJS.Signals) => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
    try {
      process.kill(c.pid, signal);
    } catch {
      // It exited meanwhile.
    }
  }
};
const stopAll = () => signalAll('SIGKILL');

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

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'dadi-scale-agents-'));
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  let reg: TestRegistry | undefined;
  try {
    await buildCli('dadi-scale');
    const entry = process.env.DADI_BENCH_CLI!;
    const dist = join(entry, '../..');
    reg = await startRegistry();
    const digest = await seedBlob(reg, randomBytes(SIZE));

    const root = spawn(
      process.execPath,
      [entry, 'p2p', 'root', '--listen', '127.0.0.1:0', '--cache', join(work, 'root-cache'), '--insecure'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    children.add(root);
    const rootUrl = await within(
      new Promise<string>((resolve, reject) => {
        let err = '';
        root.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          const m = /listening on (\S+)/.exec(err);
          if (m) resolve(m[1]!);
        });
        root.once('exit', (code) => reject(new Error(`dadi p2p root exited (${code}): ${err}`)));
      }),
      60_000,
      'dadi p2p root',
    );
    console.error(`root ${rootUrl} (pid ${root.pid}); starting ${AGENTS} agents`);

    const agents: { c: ChildProcess; next: () => Promise<string> }[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const c = spawn(
        process.execPath,
        [
          '--max-old-space-size=96',
          join(REPO_ROOT, 'bench/scale/agent-proc.mjs'),
          dist,
          rootUrl,
          reg.host,
          REPO,
          digest,
          String(SIZE),
          `agent${i}`,
          join(work, `cache${i}`),
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      children.add(c);
      agents.push({ c, next: lineReader(c) });
    }
    for (const a of agents) {
      const l = await within(a.next(), READY_MS, 'agent start');
      if (l !== 'ready') throw new Error(`agent said ${l}`);
    }
    const before = usage(root.pid!);
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
    for (const a of agents) a.c.stdin!.write('go\n');
    const results = await within(
      Promise.all(
        agents.map((a) =>
          a.next().then(
            (l) =>
              JSON.parse(l) as {
                ms: number;
                ok: boolean;
                error?: string;
                bytes: Record<string, number>;
                fallbacks: number;
              },
          ),
        ),
      ),
      RUN_MS,
      'agents fetching',
    );
    const wall = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    if (rootGone || root.exitCode !== null) throw new Error('dadi p2p root exited during the run');
    const after = usage(root.pid!);
    peak = Math.max(peak, after.rssMb);
    const bad = results.filter((r) => !r.ok);
    if (bad.length > 0) {
      throw new Error(
        `${bad.length} agents failed (wrong bytes or errors), e.g. ${bad[0]!.error ?? 'digest mismatch'}`,
      );
    }
    const sum = (k: string) => results.reduce((a, r) => a + (r.bytes[k] ?? 0), 0);
    const cpu = after.cpu - before.cpu;
    const report: RealAgents = {
      agents: AGENTS,
      blob_bytes: SIZE,
      all_finished_s: wall,
      root_cpu_s: cpu,
      root_rss_mb_idle: before.rssMb,
      root_rss_mb_peak: peak,
      // Cores the root used while serving N peers, scaled to 1,000 peers served at the same pace.
      root_cpu_core_per_1000_peers: (cpu / wall) * (1000 / AGENTS),
      // The idle root plus what each peer added at the peak.
      root_mb_per_1000_peers: before.rssMb + ((peak - before.rssMb) / AGENTS) * 1000,
      registry_bytes: sum('registry'),
      note:
        `Agents got ${(sum('root') / 1e6).toFixed(1)} MB from the root, ${(sum('peer') / 1e6).toFixed(1)} MB from peers, ` +
        `${(sum('registry') / 1e6).toFixed(1)} MB from the registry (${results.reduce((a, r) => a + r.fallbacks, 0)} fallbacks); ` +
        `every copy matched the blob's digest. Slowest agent ${(Math.max(...results.map((r) => r.ms)) / 1000).toFixed(2)} s, ` +
        `median ${(results.map((r) => r.ms).sort((a, b) => a - b)[results.length >> 1]! / 1000).toFixed(2)} s. ` +
        'All processes share one 2-core machine, so the times are CPU-bound, not network-bound.',
    };
    console.log(JSON.stringify(report, null, 2));
    await writeFile(values.out!, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    for (const c of children) c.stdin?.end();
    signalAll('SIGTERM');
    await new Promise((r) => setTimeout(r, 2000));
    stopAll();
    await reg?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
