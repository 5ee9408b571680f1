// A multi-host dadi cluster on one machine, for the P2P benchmark and its CI test: the namespaced
// network of netns.ts, and in it
//   - the registry node: Debian's docker-registry (htpasswd auth) on its loopback, behind the
//     counting proxy (bench/coldstart/delay-proxy.ts) on the node's address: every byte the
//     registry sends is counted there, whoever asked;
//   - the root node: `dadi p2p root` with its own chunk cache (when P2P is on);
//   - N hosts: one `dadi daemon` each, with its own state folder and block cache, and the agent
//     pointed at the root (when P2P is on). Containers run with `dadi run` inside the host's
//     network namespace (nsenter --net keeps the mount namespace, so the daemon's mounts are
//     visible to runc).
// Faults are made from outside the code under test: a host is killed by PID, the root is stopped
// and started again, a malicious host's agent answers through a proxy that flips body bytes, and
// a host without access runs without credentials.
// `close()` stops every process started here (by PID), scrubs each host's mounts and loop devices,
// and deletes the namespaces; callers run it in finally (the benchmark also on SIGINT).

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DAEMON_THREADPOOL_SIZE, DaemonClient } from '../../src/runtime/client.js';
import { registryConfigLines } from '../../test/integration/registry-harness.js';
import { shutDownAndScrub } from '../../test/integration/runtime-helpers.js';
import { dadiCommand } from '../coldstart/image.js';
import { type ProxyProcess, spawnProxy, stopChild } from '../coldstart/proxy-process.js';
import { inNetns, sh, sleep, type TimedRun, timedRun } from '../coldstart/util.js';
import { type ClusterNet, type ClusterNetOptions, createClusterNet, eachLimited, REGISTRY_PORT } from './netns.js';

/** Where the real registry listens inside its node (the counting proxy is in front of it). */
const REGISTRY_INNER = '127.0.0.1:5001';
/** The port of the root's tracker/chunk server and of every host's agent. */
export const ROOT_PORT = 19150;
export const AGENT_PORT = 19145;
/** The malicious host's corrupting proxy, on that host's loopback. */
const CORRUPT_PORT = 19146;

export interface Account {
  username: string;
  password: string;
}

export interface ClusterOptions extends ClusterNetOptions {
  /** This run's private folder: host states, caches, logs (removed by the caller). */
  workDir: string;
  /** The registry's storage, kept across runs so an image is converted once. */
  registryStorage: string;
  /** Round trip the counting proxy adds to every registry connection (ms). */
  registryRttMs?: number;
  /** The registry's one account; hosts with access run with it. */
  account: Account;
  /** Start the root and point every agent at it; otherwise hosts read the registry directly. */
  p2p: boolean;
  /** Hosts started without registry credentials. */
  noAccess?: number[];
  /** Hosts whose agent answers peers through a proxy that flips body bytes. */
  malicious?: number[];
  /** More `dadi p2p root` flags (e.g. `--fanout 2`). */
  rootArgs?: string[];
}

/** The command-line flags of `dadi p2p root` and of the agent in `dadi daemon`, in one place. */
export const p2pFlags = {
  root: (addr: string, cacheDir: string) => ['p2p', 'root', '--listen', `${addr}:${ROOT_PORT}`, '--cache', cacheDir],
  // Every host shares the machine's hostname (only the network is namespaced): name each one.
  agent: (rootAddr: string, hostAddr: string, id: string) => [
    '--p2p-root',
    `http://${rootAddr}:${ROOT_PORT}`,
    '--p2p-listen',
    `${hostAddr}:${AGENT_PORT}`,
    '--p2p-host-id',
    id,
  ],
};

/** True when this build of dadi has `dadi p2p root` (the P2P columns can run). */
export async function p2pAvailable(): Promise<boolean> {
  const [node, ...args] = dadiCommand();
  const r = await sh(node!, [...args, 'p2p', 'root', '--help'], { allowFail: true });
  return r.code === 0;
}

interface Started {
  child: ChildProcess;
  log: string;
}

function startLogged(ns: string, argv: string[], env: NodeJS.ProcessEnv, log: string): Started {
  const [cmd, args] = inNetns(ns, argv[0]!, argv.slice(1));
  const fd = openSync(log, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env });
    child.on('error', () => {}); // an exit code tells the waiter
    return { child, log };
  } finally {
    closeSync(fd);
  }
}

export class Cluster {
  readonly registryRef: string;
  private registry?: Started;
  private counter?: ProxyProcess;
  private root?: Started;
  private readonly daemons = new Map<number, Started>();
  private readonly corrupters = new Map<number, ProxyProcess>();
  private readonly killOnExit = () => {
    for (const s of [this.registry, this.root, ...this.daemons.values()]) s?.child.kill('SIGKILL');
  };

  private constructor(
    readonly net: ClusterNet,
    readonly opts: ClusterOptions,
  ) {
    this.registryRef = `127.0.0.1:${REGISTRY_PORT}`;
    process.on('exit', this.killOnExit);
  }

  /** Network, registry (with its counter) and, with P2P, the root. Daemons: `startHosts()`. */
  static async start(opts: ClusterOptions): Promise<Cluster> {
    const net = await createClusterNet(opts);
    const c = new Cluster(net, opts);
    try {
      await mkdir(join(opts.workDir, 'logs'), { recursive: true });
      await c.startRegistry();
      if (opts.p2p) await c.startRoot();
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  get hosts(): number {
    return this.net.hosts;
  }

  stateDir(i: number): string {
    return join(this.opts.workDir, `h${i}`, 'state');
  }

  cacheDir(i: number): string {
    return join(this.opts.workDir, `h${i}`, 'cache');
  }

  private logPath(name: string): string {
    return join(this.opts.workDir, 'logs', `${name}.log`);
  }

  /** Environment of a dadi process on a node: its own HOME, credentials unless it has no access. */
  private env(home: string, withAccess: boolean): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, DADI_PULL: 'off' };
    delete env.DADI_REGISTRY_USER;
    delete env.DADI_REGISTRY_PASSWORD;
    delete env.DOCKER_CONFIG;
    if (withAccess) {
      env.DADI_REGISTRY_USER = this.opts.account.username;
      env.DADI_REGISTRY_PASSWORD = this.opts.account.password;
    }
    return env;
  }

  private async startRegistry(): Promise<void> {
    const dir = join(this.opts.workDir, 'registry');
    await mkdir(dir, { recursive: true });
    await mkdir(this.opts.registryStorage, { recursive: true });
    const htpasswd = join(dir, 'htpasswd');
    const { username, password } = this.opts.account;
    await writeFile(htpasswd, (await sh('htpasswd', ['-Bbn', username, password])).stdout);
    const config = join(dir, 'config.yml');
    const lines = registryConfigLines(this.opts.registryStorage, REGISTRY_INNER);
    lines.push('auth:', '  htpasswd:', '    realm: dadi-p2p-bench', `    path: ${htpasswd}`);
    await writeFile(config, `${lines.join('\n')}\n`);
    this.registry = startLogged(
      this.net.registryNs,
      ['docker-registry', 'serve', config],
      process.env,
      this.logPath('registry'),
    );
    for (let i = 0; ; i++) {
      const r = await sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${REGISTRY_INNER}/v2/`], {
        netns: this.net.registryNs,
        allowFail: true,
      });
      if (r.stdout === '401') break;
      if (this.registry.child.exitCode !== null || i > 200) {
        throw new Error(`docker-registry did not start (see ${this.registry.log})`);
      }
      await sleep(50);
    }
    this.counter = await spawnProxy({
      netns: this.net.registryNs,
      listen: `${this.net.registryAddr}:${REGISTRY_PORT}`,
      target: REGISTRY_INNER,
      rttMs: this.opts.registryRttMs ?? 0,
    });
  }

  /**
   * Convert `oci:LAYOUT:TAG` into the registry as `REPO:dadi` with `dadi convert`, unless the
   * registry storage already holds that conversion (`key` names layout + converter).
   */
  async convertImage(layout: string, tag: string, repo: string, key: string): Promise<string> {
    const ref = `${this.registryRef}/${repo}:dadi`;
    const marker = join(this.opts.registryStorage, `converted-${repo.replaceAll('/', '_')}.key`);
    const prev = await readFile(marker, 'utf8').catch(() => '');
    if (prev === key) return ref;
    const [node, ...args] = dadiCommand();
    const home = join(this.opts.workDir, 'convert');
    await mkdir(home, { recursive: true });
    await sh(
      node!,
      [...args, 'convert', '-q', '--no-reuse', `oci:${layout}:${tag}`, `${REGISTRY_INNER}/${repo}:dadi`],
      {
        netns: this.net.registryNs,
        env: { ...this.env(home, true), DADI_CACHE_DIR: join(home, 'cache') },
      },
    );
    await writeFile(marker, key);
    return ref;
  }

  /** Start (or start again) the root with its chunk cache under the work folder. */
  async startRoot(opts: { emptyCache?: boolean } = {}): Promise<void> {
    const dir = join(this.opts.workDir, 'root');
    if (opts.emptyCache) await rm(join(dir, 'cache'), { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const [node, ...args] = dadiCommand();
    this.root = startLogged(
      this.net.rootNs,
      [node!, ...args, ...p2pFlags.root(this.net.rootAddr, join(dir, 'cache')), ...(this.opts.rootArgs ?? [])],
      this.env(dir, true),
      this.logPath('root'),
    );
    await this.waitListening(this.net.rootNs, `${this.net.rootAddr}:${ROOT_PORT}`, this.root);
  }

  /** What the root wrote to its log so far (over its restarts): its reports of bad peers. */
  rootLog(): Promise<string> {
    return readFile(this.logPath('root'), 'utf8').catch(() => '');
  }

  /** Kill the root (SIGKILL: no goodbye to its agents). */
  async killRoot(): Promise<void> {
    const r = this.root;
    this.root = undefined;
    if (r) {
      r.child.kill('SIGKILL');
      await stopChild(r.child);
    }
  }

  private async waitListening(ns: string, addr: string, s: Started): Promise<void> {
    for (let i = 0; ; i++) {
      const r = await sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${addr}/`], {
        netns: ns,
        allowFail: true,
      });
      if (r.stdout !== '000') return;
      if (s.child.exitCode !== null || i > 600) throw new Error(`nothing listens on ${addr} (see ${s.log})`);
      await sleep(100);
    }
  }

  private hasAccess(i: number): boolean {
    return !this.opts.noAccess?.includes(i);
  }

  /** Start host `i`'s daemon on its state folder and cache; resolves once it answers. */
  async startDaemon(i: number): Promise<void> {
    const state = this.stateDir(i);
    await mkdir(state, { recursive: true });
    const [node, ...args] = dadiCommand();
    // DADI_P2P_BENCH_PROFILE=<host>: that host's daemon writes a CPU profile (.cpuprofile) at exit.
    // The built CLI starts from a launcher script (bin/dadi), which runs the daemon as bin/dadi.js.
    const profiled = process.env.DADI_P2P_BENCH_PROFILE === String(i);
    const command = profiled
      ? [
          process.execPath,
          '--cpu-prof',
          `--cpu-prof-dir=${join(this.opts.workDir, '..', 'profiles')}`,
          ...(node === process.execPath ? args : [`${node}.js`]),
        ]
      : [node!, ...args];
    const argv = [...command, 'daemon', '--state', state, '--cache-dir', this.cacheDir(i)];
    if (this.opts.p2p) argv.push(...p2pFlags.agent(this.net.rootAddr, this.net.hostAddr(i), `h${i}`));
    const env = { ...this.env(join(this.opts.workDir, `h${i}`), this.hasAccess(i)) };
    env.UV_THREADPOOL_SIZE = String(DAEMON_THREADPOOL_SIZE);
    const d = startLogged(this.net.hostNs(i), argv, env, this.logPath(`h${i}-daemon`));
    this.daemons.set(i, d);
    for (let n = 0; ; n++) {
      const client = await DaemonClient.connect({ stateDir: state, autoStart: false }).catch(() => undefined);
      if (client) break;
      if (d.child.exitCode !== null || n > 600) throw new Error(`host ${i}: the daemon did not start (see ${d.log})`);
      await sleep(100);
    }
    if (this.opts.malicious?.includes(i)) await this.corruptAgent(i);
  }

  /**
   * Make host `i` a peer that serves wrong bytes: connections from other nodes to its agent port are
   * DNATed to a local proxy that forwards them to the agent and flips bytes in the answers' bodies.
   */
  private async corruptAgent(i: number): Promise<void> {
    if (this.corrupters.has(i)) return;
    const ns = this.net.hostNs(i);
    const agent = `${this.net.hostAddr(i)}:${AGENT_PORT}`;
    this.corrupters.set(
      i,
      await spawnProxy({ netns: ns, listen: `127.0.0.1:${CORRUPT_PORT}`, target: agent, corrupt: true }),
    );
    await sh('ip', [
      'netns',
      'exec',
      ns,
      'iptables',
      '-t',
      'nat',
      '-A',
      'PREROUTING',
      '-i',
      'eth0',
      '-p',
      'tcp',
      '--dport',
      String(AGENT_PORT),
      '-j',
      'DNAT',
      '--to-destination',
      `127.0.0.1:${CORRUPT_PORT}`,
    ]);
  }

  /** Start every host's daemon (a few at a time: each is a Node process starting up). */
  async startHosts(): Promise<void> {
    await eachLimited(
      Array.from({ length: this.hosts }, (_, i) => i),
      4,
      (i) => this.startDaemon(i),
    );
  }

  /** SIGKILL host `i`'s daemon (a parent dying mid-transfer); its devices are scrubbed at close. */
  /** PIDs of the running daemons and of the root (for their CPU time). */
  pids(): { daemons: number[]; root?: number } {
    const alive = (s: Started | undefined) => (s?.child.exitCode === null ? s.child.pid : undefined);
    const daemons = [...this.daemons.values()].map(alive).filter((p): p is number => p !== undefined);
    return { daemons, root: alive(this.root) };
  }

  async killDaemon(i: number): Promise<void> {
    const d = this.daemons.get(i);
    if (!d) return;
    d.child.kill('SIGKILL');
    await stopChild(d.child);
  }

  /** Stop every daemon and scrub what it left; remove host states and caches (a cold start next). */
  async stopHosts(opts: { wipe?: boolean } = {}): Promise<void> {
    await eachLimited([...this.daemons.entries()], 4, async ([i, d]) => {
      await shutDownAndScrub(this.stateDir(i), [], d.child.pid).catch(() => {});
      await stopChild(d.child);
      if (opts.wipe) await rm(join(this.opts.workDir, `h${i}`), { recursive: true, force: true });
    });
    this.daemons.clear();
    for (const p of this.corrupters.values()) await p.stop();
    this.corrupters.clear();
  }

  /** `dadi run --rm REF -- CMD` on host `i`, timed from `t0` until `firstLine` on its stdout. */
  run(
    i: number,
    ref: string,
    cmd: string[],
    firstLine: string,
    opts: { t0?: number; timeoutMs?: number } = {},
  ): Promise<TimedRun> {
    const [node, ...args] = dadiCommand();
    const argv = [...args, 'run', '--rm', '--no-trace', '--state', this.stateDir(i), ref, '--', ...cmd];
    return timedRun(node!, argv, firstLine, {
      netns: this.net.hostNs(i),
      env: this.env(join(this.opts.workDir, `h${i}`), this.hasAccess(i)),
      t0: opts.t0,
      timeoutMs: opts.timeoutMs ?? 180_000,
    });
  }

  /** What the registry sent since the last reset (counted at its node). */
  registryStats() {
    return this.counter!.stats();
  }

  resetRegistryStats(): void {
    this.counter!.reset();
  }

  daemonPid(i: number): number | undefined {
    return this.daemons.get(i)?.child.pid;
  }

  async close(): Promise<void> {
    try {
      await this.stopHosts();
      if (this.root) await stopChild(this.root.child);
      await this.counter?.stop();
      if (this.registry) await stopChild(this.registry.child);
    } finally {
      process.off('exit', this.killOnExit);
      await this.net.close();
    }
  }
}
