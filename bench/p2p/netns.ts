// The P2P cluster's network: one bridge kept inside its own network namespace, and one namespace per
// node (the registry, the root, N hosts), each joined to the bridge by a veth pair shaped with tbf
// on both ends (no netem here: latency only through the user-space proxy). Every address lives
// inside these namespaces. In the root's and the hosts' namespaces, 127.0.0.1:REGISTRY_PORT is
// DNATed to the registry node, so an image reference `127.0.0.1:5000/…` means the same registry on
// every node, over plain HTTP, as a loopback registry does for dadi.
//
//   const net = await createClusterNet({ hosts: 20, uplinkMbit: 1000, hostMbit: 1000 });
//   try { … nsenter --net=/run/netns/${net.hostNs(3)} … } finally { await net.close(); }
//
// Namespaces are named `dp2p-<pid>-<node>`; a run that was killed before its cleanup leaves names
// whose pid is gone, which the next run deletes.

import { pidAlive } from '../../test/integration/runtime-helpers.js';
import { shapeLink } from '../coldstart/net.js';
import { sh } from '../coldstart/util.js';

/** The registry as every node names it (DNAT to the registry node's counting proxy). */
export const REGISTRY_PORT = 5000;
export const REGISTRY = `127.0.0.1:${REGISTRY_PORT}`;
const SUBNET = '10.77';
const BRIDGE = 'br0';

export interface ClusterNetOptions {
  hosts: number;
  /** The registry node's link (both directions), Mbit/s; undefined: unshaped. */
  uplinkMbit?: number;
  /** Every host's link (both directions), Mbit/s; undefined: unshaped. */
  hostMbit?: number;
  /** The root node's link, Mbit/s (default: as the hosts'). */
  rootMbit?: number;
}

export interface ClusterNet {
  hosts: number;
  bridgeNs: string;
  registryNs: string;
  rootNs: string;
  hostNs(i: number): string;
  registryAddr: string;
  rootAddr: string;
  hostAddr(i: number): string;
  /** Bytes a node's interface sent and received so far (kernel counters of its veth end). */
  linkBytes(ns: string): Promise<{ tx: number; rx: number }>;
  /** Delete every namespace of this cluster (their veths and the bridge go with them). */
  close(): Promise<void>;
}

const MAX_HOSTS = 500;

function hostAddr(i: number): string {
  return `${SUBNET}.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

async function listNamespaces(): Promise<string[]> {
  const out = (await sh('ip', ['netns', 'list'], { allowFail: true })).stdout;
  return out
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

/** Delete the namespaces that runs killed before their cleanup left behind (their pid is gone). */
async function deleteOrphans(): Promise<void> {
  for (const ns of await listNamespaces()) {
    const m = /^dp2p-(\d+)-/.exec(ns);
    if (m && !pidAlive(Number(m[1]))) await sh('ip', ['netns', 'del', ns], { allowFail: true });
  }
}

/** Run `fn` over `items` with at most `limit` at a time. */
export async function eachLimited<T>(items: T[], limit: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function createClusterNet(opts: ClusterNetOptions): Promise<ClusterNet> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_HOSTS) {
    throw new Error(`hosts must be 1–${MAX_HOSTS}, not ${opts.hosts}`);
  }
  const prefix = `dp2p-${process.pid}`;
  const bridgeNs = `${prefix}-bridge`;
  const registryNs = `${prefix}-registry`;
  const rootNs = `${prefix}-root`;
  const hostNs = (i: number) => `${prefix}-h${i}`;
  const created: string[] = [];
  const close = async () => {
    for (const ns of created.reverse()) await sh('ip', ['netns', 'del', ns], { allowFail: true });
    created.length = 0;
  };
  const addNs = async (ns: string) => {
    await sh('ip', ['netns', 'add', ns]);
    created.push(ns);
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  };
  /** A node namespace joined to the bridge: `eth0` inside it, `v<n>` on the bridge. */
  const attach = async (ns: string, n: number, addr: string, mbit: number | undefined, dnat: boolean) => {
    await addNs(ns);
    const port = `v${n}`;
    await sh('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', bridgeNs]);
    await sh('ip', ['-n', bridgeNs, 'link', 'set', port, 'master', BRIDGE, 'up']);
    await sh('ip', ['-n', ns, 'addr', 'add', `${addr}/16`, 'dev', 'eth0']);
    await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await shapeLink(ns, 'eth0', mbit);
    await shapeLink(bridgeNs, port, mbit);
    if (dnat) {
      // Loopback addresses may be routed out once route_localnet is on; the SNAT gives the
      // packets the node's own address, since 127.0.0.1 cannot appear on the wire.
      await sh('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.conf.all.route_localnet=1']);
      const ipt = (args: string[]) => sh('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', ...args]);
      const dst = `${SUBNET}.0.1:${REGISTRY_PORT}`;
      const regPort = String(REGISTRY_PORT);
      await ipt([
        '-A',
        'OUTPUT',
        '-d',
        '127.0.0.1',
        '-p',
        'tcp',
        '--dport',
        regPort,
        '-j',
        'DNAT',
        '--to-destination',
        dst,
      ]);
      await ipt(['-A', 'POSTROUTING', '-s', '127.0.0.1', '-d', `${SUBNET}.0.1`, '-j', 'SNAT', '--to-source', addr]);
    }
  };
  try {
    await deleteOrphans();
    await addNs(bridgeNs);
    await sh('ip', ['-n', bridgeNs, 'link', 'add', BRIDGE, 'type', 'bridge']);
    await sh('ip', ['-n', bridgeNs, 'link', 'set', BRIDGE, 'up']);
    await attach(registryNs, 0, `${SUBNET}.0.1`, opts.uplinkMbit, false);
    await attach(rootNs, 1, `${SUBNET}.0.2`, opts.rootMbit ?? opts.hostMbit, true);
    const hosts = Array.from({ length: opts.hosts }, (_, i) => i);
    await eachLimited(hosts, 6, (i) => attach(hostNs(i), 10 + i, hostAddr(i), opts.hostMbit, true));
  } catch (e) {
    await close();
    throw e;
  }
  return {
    hosts: opts.hosts,
    bridgeNs,
    registryNs,
    rootNs,
    hostNs,
    registryAddr: `${SUBNET}.0.1`,
    rootAddr: `${SUBNET}.0.2`,
    hostAddr,
    async linkBytes(ns) {
      const r = await sh('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'eth0']);
      const [link] = JSON.parse(r.stdout) as { stats64: { tx: { bytes: number }; rx: { bytes: number } } }[];
      return { tx: link!.stats64.tx.bytes, rx: link!.stats64.rx.bytes };
    },
    close,
  };
}
