// The benchmark's network: the registry in one network namespace, the host under test in another,
// joined by a veth pair shaped with tbf on both ends (no netem on this kernel), plus the delaying,
// counting proxy (delay-proxy.ts) on the host side's loopback. The host reaches the registry only
// as `127.0.0.1:5000` → proxy → shaped veth → registry. Only addresses inside these namespaces and
// their loopbacks are used; `close()` stops what was started (by PID) and deletes the namespaces.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryConfigLines } from '../../test/integration/registry-harness.js';
import type { ProxyStats } from './delay-proxy.js';
import { type ProxyProcess, spawnProxy, stopChild } from './proxy-process.js';
import { log, sh, sleep } from './util.js';

export const REG_NS = 'dadi-bench-reg';
export const HOST_NS = 'dadi-bench-host';
const REG_IF = 'dbench-r0';
const HOST_IF = 'dbench-h0';
const REG_ADDR = '10.231.0.1';
const HOST_ADDR = '10.231.0.2';
const REG_PORT = 5000;
const PROXY_PORT = 5000;

export interface LinkSetting {
  name: string;
  /** undefined: no shaping (the veth as it is). */
  rateMbit?: number;
  rttMs: number;
}

export interface BenchNet {
  /** The registry as the host under test sees it (through the proxy). */
  registry: string;
  /** Shape the veth (both directions) and set the proxy's round trip. */
  setLink(s: LinkSetting): Promise<void>;
  resetStats(): Promise<void>;
  stats(): Promise<ProxyStats>;
  close(): Promise<void>;
}

async function deleteNamespaces(): Promise<void> {
  const list = (await sh('ip', ['netns', 'list'], { allowFail: true })).stdout;
  for (const ns of [REG_NS, HOST_NS]) {
    if (new RegExp(`^${ns}\\b`, 'm').test(list)) await sh('ip', ['netns', 'del', ns], { allowFail: true });
  }
}

/**
 * Shape the egress of `dev` in `ns` with tbf at `rateMbit` (undefined: remove the shaping). Shape
 * both ends of a veth to limit both directions.
 */
export async function shapeLink(ns: string, dev: string, rateMbit: number | undefined): Promise<void> {
  if (rateMbit === undefined) {
    await sh('tc', ['-n', ns, 'qdisc', 'del', 'dev', dev, 'root'], { allowFail: true });
    return;
  }
  // burst ≥ 64 KiB (GSO packets on veth) and ≥ 2 ms worth of the rate.
  const burst = Math.max(64 * 1024, Math.round((rateMbit * 1e6) / 8 / 500));
  const tbf = ['rate', `${rateMbit}mbit`, 'burst', String(burst), 'latency', '50ms'];
  await sh('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', ...tbf]);
}

/** Set up namespaces, veth, registry (storage under `workDir/registry`) and the proxy. */
export async function startNet(workDir: string): Promise<BenchNet> {
  let registry: ChildProcess | undefined;
  let proxy: ProxyProcess | undefined;
  const killAll = () => {
    if (registry?.pid && registry.exitCode === null) registry.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const close = async () => {
    await proxy?.stop();
    await stopChild(registry);
    process.off('exit', killAll);
    await deleteNamespaces();
  };
  try {
    await deleteNamespaces(); // leftovers of an interrupted run (ours, by name)
    await sh('ip', ['netns', 'add', REG_NS]);
    await sh('ip', ['netns', 'add', HOST_NS]);
    await sh('ip', ['link', 'add', REG_IF, 'netns', REG_NS, 'type', 'veth', 'peer', 'name', HOST_IF, 'netns', HOST_NS]);
    for (const [ns, dev, addr] of [
      [REG_NS, REG_IF, REG_ADDR],
      [HOST_NS, HOST_IF, HOST_ADDR],
    ] as const) {
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await sh('ip', ['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', dev]);
      await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }

    const regDir = join(workDir, 'registry');
    await mkdir(regDir, { recursive: true });
    const config = join(workDir, 'registry-config.yml');
    await writeFile(config, `${registryConfigLines(regDir, `${REG_ADDR}:${REG_PORT}`).join('\n')}\n`);
    registry = spawn('ip', ['netns', 'exec', REG_NS, 'docker-registry', 'serve', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let regLog = '';
    registry.stderr!.on('data', (b: Buffer) => (regLog = (regLog + b.toString('utf8')).slice(-4000)));
    for (let i = 0; ; i++) {
      const r = await sh(
        'curl',
        ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${REG_ADDR}:${REG_PORT}/v2/`],
        {
          netns: REG_NS,
          allowFail: true,
        },
      );
      if (r.stdout === '200') break;
      if (registry.exitCode !== null || i > 150) throw new Error(`registry did not start: ${regLog}`);
      await sleep(100);
    }

    proxy = await spawnProxy({ netns: HOST_NS, listen: `127.0.0.1:${PROXY_PORT}`, target: `${REG_ADDR}:${REG_PORT}` });
    log(`network up: ${HOST_NS} → 127.0.0.1:${PROXY_PORT} (proxy) → ${REG_ADDR}:${REG_PORT} (${REG_NS})`);

    return {
      registry: `127.0.0.1:${PROXY_PORT}`,
      async setLink(s) {
        for (const [ns, dev] of [
          [REG_NS, REG_IF],
          [HOST_NS, HOST_IF],
        ] as const) {
          await shapeLink(ns, dev, s.rateMbit);
        }
        proxy!.setRtt(s.rttMs);
        const rate = s.rateMbit === undefined ? 'no shaping' : `tbf ${s.rateMbit} Mbit/s both ways`;
        log(`link ${s.name}: ${rate}, +${s.rttMs} ms round trip (proxy)`);
      },
      async resetStats() {
        proxy!.reset();
      },
      stats: () => proxy!.stats(),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
