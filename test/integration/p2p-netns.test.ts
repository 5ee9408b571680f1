// Issue #13 on a small namespaced cluster (bench/p2p/cluster.ts): a registry behind a 1 Gbit/s
// uplink and a counting proxy, one `dadi p2p root`, and five hosts, each in its own network
// namespace with its own `dadi daemon` and cache. The real P2P path, asserted from outside:
// containers print the source image's bytes; the registry sends about one copy for all hosts; a
// malicious peer (its answers pass a byte-flipping proxy) changes nothing; a parent killed
// mid-transfer leaves no host stuck; a host without registry credentials gets no byte of the blob.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { converterKey } from '../../bench/coldstart/image.js';
import { sh } from '../../bench/coldstart/util.js';
import { Cluster } from '../../bench/p2p/cluster.js';
import {
  accessProbes,
  coldCluster,
  corruptReports,
  killParents,
  layerBlobPaths,
  type StartOutcome,
  startAll,
  type Workload,
} from '../../bench/p2p/scenarios.js';
import { readMounts } from '../../src/export/index.js';
import { missing, requireOrSkip, slowTestsOff } from '../require.js';
import { debianLayout, debianRootfs, haveDebianTools } from './debian-image.js';
import { haveRegistry } from './registry-harness.js';

const WHAT = 'P2P across namespaced hosts';
const HAVE =
  requireOrSkip(WHAT, slowTestsOff()) &&
  requireOrSkip(
    WHAT,
    missing({
      root: true,
      tools: ['ip', 'tc', 'iptables', 'nsenter', 'curl', 'runc', 'htpasswd'],
      hint: 'apt-get install iproute2 iptables curl runc apache2-utils',
    }),
  ) &&
  haveRegistry(WHAT) &&
  haveDebianTools(WHAT);

const HOSTS = 5;
const MALICIOUS = 1;
const OUTSIDER = 4;

function describeOutcome(o: StartOutcome): string {
  return JSON.stringify({ ...o, perHost: o.perHost.filter((h) => h.code !== 0 || h.wrongBytes > 0) });
}

describe.runIf(HAVE)(WHAT, () => {
  let work: string;
  let cluster: Cluster;
  let ref: string;
  let blobs: string[];
  let w: Workload;
  /** What one host's cold start costs the registry, alone. */
  let oneCopy: number;

  beforeAll(async () => {
    const layout = await debianLayout();
    const expected = await readFile(join(await debianRootfs(), 'usr/lib/os-release'), 'utf8');
    w = { name: 'cat', cmd: ['cat', '/etc/os-release'], firstLine: expected.split('\n')[0]!, expected };
    work = await mkdtemp('/var/tmp/dadi-p2p-test-');
    cluster = await Cluster.start({
      workDir: join(work, 'run'),
      // Kept across runs: the image is converted again only when the converter changed.
      registryStorage: join(process.env.DADI_TEST_CACHE ?? '/var/tmp/dadi-test-cache', 'p2p-registry'),
      hosts: HOSTS,
      uplinkMbit: 1000,
      hostMbit: 1000,
      account: { username: 'p2p', password: 'p2p-test-password' },
      p2p: true,
      noAccess: [OUTSIDER],
      // A chain-like tree even with four hosts, so that peers (the malicious one too) serve children.
      rootArgs: ['--fanout', '2', '--root-fanout', '1'],
    });
    ref = await cluster.convertImage(layout, 'v1', 'p2p/debian', `v1:${await converterKey()}`);
    blobs = await layerBlobPaths(cluster, 'p2p/debian');
    await coldCluster(cluster);
    const single = await startAll(cluster, ref, w, { hosts: [0] });
    expect(single.stuckHosts, describeOutcome(single)).toBe(0);
    expect(single.wrongBytes).toBe(0);
    oneCopy = single.registryBytes;
  }, 600_000);

  afterAll(async () => {
    try {
      await cluster?.close();
      const ours = (await sh('ip', ['netns', 'list'])).stdout
        .split('\n')
        .filter((l) => l.startsWith(`dp2p-${process.pid}-`));
      expect(ours).toEqual([]);
      if (work) expect((await readMounts()).filter((m) => m.mountPoint.startsWith(work))).toEqual([]);
    } finally {
      if (work) await rm(work, { recursive: true, force: true });
    }
  }, 300_000);

  it('all hosts start at once beside a malicious peer: right bytes, about one registry copy, nothing for the outsider', {
    timeout: 300_000,
  }, async () => {
    cluster.opts.malicious = [MALICIOUS];
    await coldCluster(cluster);
    // The malicious host asks first: it sits high in the tree, so its children must meet its bytes.
    const o = await startAll(cluster, ref, w, { first: MALICIOUS });
    console.log(
      `P2P ${HOSTS} hosts: registry ${o.registryBytes} B (one host alone: ${oneCopy} B), all printed in ${o.allStartedS?.toFixed(2)} s; uploads ${o.perHost.map((h) => h.uploadBytes).join(' ')}`,
    );
    expect(o.stuckHosts, describeOutcome(o)).toBe(0);
    expect(o.wrongBytes, describeOutcome(o)).toBe(0);
    // Each of the four hosts with access pulls a copy; without P2P the registry would send each
    // one. With it: about one (re-fetches of the malicious host's bad chunks add some).
    expect(o.registryBytes).toBeLessThan(oneCopy * 2);
    // The copies moved between peers: hosts uploaded more than two copies to each other.
    const peerUploads = o.perHost.filter((h) => h.host !== OUTSIDER).reduce((a, h) => a + h.uploadBytes, 0);
    expect(peerUploads).toBeGreaterThan(oneCopy * 2);
    // The malicious host served children, and what it served was caught and blamed.
    expect(o.perHost.find((h) => h.host === MALICIOUS)!.uploadBytes).toBeGreaterThan(1 << 20);
    expect(await corruptReports(cluster, MALICIOUS)).toBeGreaterThan(0);

    const outsider = o.perHost.find((h) => h.host === OUTSIDER)!;
    expect(outsider.firstOutputS).toBeUndefined();
    expect(outsider.code).not.toBe(0);
    const probes = await accessProbes(cluster, OUTSIDER, blobs[0]!, 0);
    for (const p of probes) expect(p.bytes, `${p.target}: HTTP ${p.status}`).toBe(0);
    expect(probes.length).toBeGreaterThan(1);
  });

  it('a parent killed mid-transfer leaves no host stuck and no wrong byte', { timeout: 300_000 }, async () => {
    cluster.opts.malicious = [];
    await coldCluster(cluster);
    const o = await startAll(cluster, ref, w, { fault: killParents(1, Math.round(oneCopy * 0.3)) });
    console.log(`P2P kill a parent: ${o.notes.join('; ')}; all printed in ${o.allStartedS?.toFixed(2)} s`);
    expect(o.notes.some((n) => n.startsWith('killed host'))).toBe(true);
    expect(o.stuckHosts, describeOutcome(o)).toBe(0);
    expect(o.wrongBytes, describeOutcome(o)).toBe(0);
  });
});
