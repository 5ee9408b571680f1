// Issue #12: containerd 1.6 (Debian's, started privately) with `dadi snapshotter` as its proxy
// snapshotter. Ordinary images unpack into overlayfs snapshots; DADI images pulled with
// `dadi pull --containerd-address` start lazily (the registry serves a fraction of the image);
// a container's changes commit through containerd; a snapshotter restart leaves a running
// container working; afterwards nothing of ours is mounted or running.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMounts } from '../../src/export/system.js';
import { DaemonClient } from '../../src/runtime/index.js';
import { run, runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import {
  type Containerd,
  haveContainerd,
  type SnapshotterProcess,
  startContainerd,
  startSnapshotter,
} from './containerd-harness.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { pushImage, pushLayoutImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { buildRootfs, emergencyCleanup, imageToLayer, makeExt4 } from './runtime-helpers.js';

const WHAT = 'containerd snapshotter';
const HAVE = haveRegistry(WHAT) && haveContainerd(WHAT) && haveFixtures(WHAT);

describe.skipIf(!HAVE)('dadi snapshotter under containerd 1.6', () => {
  let root: string;
  let reg: TestRegistry;
  /** A pass-through proxy in front of the registry that counts the bytes it serves. */
  let proxy: FaultProxy;
  /** A small DADI image with a shell (host binaries), pulled through the proxy. */
  let small: { ref: string; bytes: number };
  let ctrd: Containerd;
  let snap: SnapshotterProcess | undefined;
  let env: NodeJS.ProcessEnv;
  const snapRoot = () => join(root, 'snapshotter');
  const startSnap = async () => {
    snap = await startSnapshotter(ctrd.snapshotterSocket, snapRoot(), env);
  };
  const ctr = (args: string[]) => ctrd.ctr(args);
  const ok = async (args: string[]) => {
    const r = await ctr(args);
    expect(r.code, `ctr ${args.join(' ')}: ${r.stderr}\n${snap?.logs() ?? ''}`).toBe(0);
    return r;
  };

  beforeAll(async () => {
    // Mount points live deep in a private folder, never directly under /tmp.
    root = await mkdtemp('/var/tmp/dadi-containerd-');
    env = { DADI_STATE: join(root, 'dadi-state'), DADI_CACHE_DIR: join(root, 'cache') };
    reg = await startRegistry({ auth: 'none' });
    await pushLayoutImage(fixture('oci/hello-world'), 'amd64', reg.host, 'library/hello-world', 'plain');
    proxy = await startFaultProxy({ target: reg.url });
    const rootfs = join(root, 'rootfs');
    await buildRootfs(rootfs);
    // Data no container here reads (incompressible, so the blob holds it): a lazy start leaves it in the registry.
    await writeFile(join(rootfs, 'data/unread.bin'), randomBytes(16 << 20));
    await makeExt4(rootfs, join(root, 'disk.img'));
    await imageToLayer(join(root, 'disk.img'), join(root, 'layer.tar'));
    const img = await pushImage(reg.host, 'dadi/small', 'v1', [join(root, 'layer.tar')], {
      Cmd: ['/bin/sh', '-c', 'echo default cmd'],
      Env: ['PATH=/usr/bin:/bin'],
    });
    small = { ref: `${proxy.host}/dadi/small:v1`, bytes: img.layers.reduce((n, l) => n + l.size, 0) };
    ctrd = await startContainerd(join(root, 'containerd'));
    await startSnap();
  }, 120_000);

  afterAll(async () => {
    try {
      await snap?.stop();
      await ctrd?.stop();
      const client = await DaemonClient.connect({ stateDir: env.DADI_STATE, autoStart: false }).catch(() => undefined);
      await client?.shutdown();
    } finally {
      if (root) {
        await emergencyCleanup(env.DADI_STATE!, []);
        for (const m of (await readMounts()).reverse()) {
          if (m.mountPoint.startsWith(`${root}/`)) await run('umount', ['-l', m.mountPoint]);
        }
        await rm(root, { recursive: true, force: true });
      }
      await proxy?.stop();
      await reg?.stop();
    }
  });

  it('pulls and runs an ordinary image through overlayfs snapshots', async () => {
    const ref = `${reg.host}/library/hello-world:plain`;
    await ok(['images', 'pull', '--plain-http', '--snapshotter', 'dadi', ref]);
    const r = await ok(['run', '--rm', '--snapshotter', 'dadi', ref, 'hello-plain']);
    expect(r.stdout).toContain('Hello from Docker!');
    const snaps = await ok(['snapshots', '--snapshotter', 'dadi', 'ls']);
    expect(snaps.stdout).toMatch(/sha256:[0-9a-f]{64}\s+Committed/);
  }, 120_000);

  const dadiPull = async (ref: string) => {
    const r = await runDadi(['pull', '--containerd-address', ctrd.socket, '-n', 'dadi-test', ref]);
    expect(r.code, `${r.stderr}\n${snap?.logs() ?? ''}`).toBe(0);
    return r;
  };

  it('pulls a converted hello-world lazily and runs it', async () => {
    const conv = await runDadi(
      ['convert', '-q', '--json', `oci:${fixture('oci/hello-world')}:amd64`, `${reg.host}/library/hello-world:dadi`],
      { env },
    );
    expect(conv.code, conv.stderr).toBe(0);
    const ref = `${proxy.host}/library/hello-world:dadi`;
    await dadiPull(ref);
    const r = await ok(['run', '--rm', '--snapshotter', 'dadi', ref, 'hello-dadi']);
    expect(r.stdout).toContain('Hello from Docker!');
  }, 180_000);

  it('pulls without downloading layers; a run fetches a fraction of the image', async () => {
    const before = proxy.bodyBytes;
    await dadiPull(small.ref);
    const pulled = proxy.bodyBytes - before;
    // Manifest and config only.
    expect(pulled).toBeGreaterThan(0);
    expect(pulled).toBeLessThan(8192);
    const r = await ok([
      'run',
      '--rm',
      '--snapshotter',
      'dadi',
      small.ref,
      'small-run',
      'sh',
      '-c',
      'cat /etc/os-release; echo ran',
    ]);
    expect(r.stdout).toContain('dadi test rootfs');
    expect(r.stdout).toContain('ran');
    const served = proxy.bodyBytes - before;
    console.log(
      `containerd lazy run: registry served ${served} of ${small.bytes} image bytes (${((100 * served) / small.bytes).toFixed(1)}%)`,
    );
    expect(served).toBeLessThan(small.bytes / 4);
  }, 180_000);
});
