// Issue #12: containerd 1.6 (Debian's, started privately) with `dadi snapshotter` as its proxy
// snapshotter. Ordinary images unpack into overlayfs snapshots; DADI images pulled with
// `dadi pull --containerd-address` start lazily (the registry serves a fraction of the image);
// a container's changes commit through containerd; a snapshotter restart leaves a running
// container working; afterwards nothing of ours is mounted or running.

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMounts } from '../../src/export/system.js';
import { DaemonClient } from '../../src/runtime/index.js';
import { run } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import {
  type Containerd,
  haveContainerd,
  type SnapshotterProcess,
  startContainerd,
  startSnapshotter,
} from './containerd-harness.js';
import { pushLayoutImage } from './push-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { emergencyCleanup } from './runtime-helpers.js';

const WHAT = 'containerd snapshotter';
const HAVE = haveRegistry(WHAT) && haveContainerd(WHAT) && haveFixtures(WHAT);

describe.skipIf(!HAVE)('dadi snapshotter under containerd 1.6', () => {
  let root: string;
  let reg: TestRegistry;
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
});
