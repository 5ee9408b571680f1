// Issue #5 through the CLI with a real registry: `dadi run` of an image pulled lazily, exit codes,
// `dadi mount`/`ps`/`umount`, and `dadi commit` pushing a new image that a fresh run sees while the
// original stays unchanged. Nothing of ours may remain afterwards.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkJsonOutput } from '../../src/cli/json-output.js';
import { runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { missing, requireOrSkip } from '../require.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { leftovers, pushRootfsImage, shutDownAndScrub } from './runtime-helpers.js';

const HAVE =
  haveRegistry('dadi run from a registry') && requireOrSkip('dadi run from a registry', missing({ root: true }));

describe.skipIf(!HAVE)('dadi run/mount/commit from a registry', () => {
  let root: string;
  let reg: TestRegistry;
  let ref: string;
  let state: string;
  let cacheDir: string;
  const names = ['c-remote-commit', 'c-remote-missing'];
  const dadi = (args: string[]) => runDadi([...args], { env: { DADI_STATE: state, DADI_CACHE_DIR: cacheDir } });

  beforeAll(async () => {
    // State deep in a private folder (FUSE mount points must never sit directly under /tmp).
    root = await mkdtemp('/var/tmp/dadi-run-remote-');
    state = join(root, 'state');
    cacheDir = join(root, 'cache');
    reg = await startRegistry({ auth: 'none' });
    ref = await pushRootfsImage(root, reg.host, 'dadi/run', {
      Cmd: ['/bin/sh', '-c', 'echo default cmd'],
      Env: ['PATH=/usr/bin:/bin', 'GREETING=hello'],
    });
  });

  afterAll(async () => {
    try {
      await dadi(['rm', ...names]).catch(() => {});
      await shutDownAndScrub(state, names);
      expect(await leftovers(state, names)).toEqual([]);
    } finally {
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  it('runs the image lazily, streams output and returns the exit code', async () => {
    const r = await dadi([
      'run',
      '--rm',
      ref,
      '--',
      '/bin/sh',
      '-c',
      'echo "$GREETING from dadi"; cat /etc/os-release >/dev/null; exit 3',
    ]);
    expect(r.stdout).toContain('hello from dadi');
    expect(r.code).toBe(3);
    const d = await dadi(['run', '--rm', ref]);
    expect(d.stdout).toContain('default cmd');
    expect(d.code).toBe(0);
  });

  it('an image that cannot be resolved leaves no container behind (its record is made meanwhile)', async () => {
    const r = await dadi(['run', '--rm', '--name', 'c-remote-missing', `${reg.host}/dadi/run:no-such-tag`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dadi: .*no-such-tag.*not found/m);
    const ps = await dadi(['ps', '--json']);
    expect((JSON.parse(ps.stdout) as { containers: { name: string }[] }).containers.map((c) => c.name)).not.toContain(
      'c-remote-missing',
    );
  });

  it('--timings shows where the launch went, as text and as JSON on stderr; output and exit code unchanged', async () => {
    const t = await dadi(['run', '--rm', '--timings', ref, '--', '/bin/sh', '-c', 'echo timed; exit 4']);
    expect(t.code, t.stderr).toBe(4);
    expect(t.stdout).toBe('timed\n');
    const line = t.stderr.split('\n').find((l) => l.startsWith('dadi: timings: '));
    expect(line, t.stderr).toMatch(/cli start [\d.]+ ms, daemon connect [\d.]+ ms, resolve [\d.]+ ms, /);
    expect(line).toMatch(/mount: fuse [\d.]+ ms, mount: loop [\d.]+ ms, mount: ext4 [\d.]+ ms, bundle /);
    expect(line).toMatch(/runc to first output [\d.]+ ms, rest of the run [\d.]+ ms, cleanup [\d.]+ ms; total \d+ ms$/);

    const j = await dadi(['run', '--rm', '--timings', '--json', ref, '--', '/bin/true']);
    expect(j.code, j.stderr).toBe(0);
    expect(j.stdout).toBe('');
    const out = checkJsonOutput('run', j.stderr.trim().split('\n').at(-1)!) as {
      timings: { step: string; ms: number }[];
      totalMs: number;
    };
    const steps = out.timings.map((s) => s.step);
    for (const s of ['cli start', 'resolve', 'resolve: manifest', 'resolve: config', 'mount', 'mount: open layers']) {
      expect(steps).toContain(s);
    }
    for (const s of ['mount: ext4', 'bundle', 'cleanup']) expect(steps).toContain(s);
    // The daemon's own steps of a request fit in the client's time for it.
    for (const parent of ['resolve', 'mount']) {
      const own = out.timings.find((s) => s.step === parent)!.ms;
      const parts = out.timings.filter((s) => s.step.startsWith(`${parent}: `)).reduce((a, s) => a + s.ms, 0);
      expect(parts, parent).toBeLessThanOrEqual(own + 1);
    }
    // No output: the run is one step. The top-level steps fit in the total (details are parts of "mount").
    expect(steps).toContain('runc run (no output)');
    const top = out.timings.filter((s) => !s.step.includes(': ')).reduce((a, s) => a + s.ms, 0);
    expect(top).toBeLessThanOrEqual(out.totalMs + 1);
    expect(out.timings.every((s) => s.ms >= 0)).toBe(true);
  });

  it.skipIf(!haveFixtures('hello-world run'))(
    'the converted hello-world, pulled lazily, prints its greeting',
    async () => {
      const target = `${reg.host}/library/hello-world:dadi`;
      const conv = await dadi(['convert', '-q', `oci:${fixture('oci/hello-world')}:amd64`, target]);
      expect(conv.code, conv.stderr).toBe(0);
      const cat = await dadi(['stat', '--json', target, '/hello']);
      expect(cat.code, cat.stderr).toBe(0);
      expect((checkJsonOutput('stat', cat.stdout) as { size: number }).size).toBeGreaterThan(1000);
      const r = await dadi(['run', '--rm', target]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Hello from Docker!');
    },
  );

  it('mounts read-only, lists the device, unmounts', async () => {
    const dir = join(root, 'mnt');
    await mkdir(dir);
    const m = await dadi(['mount', ref, dir]);
    expect(m.code, m.stderr).toBe(0);
    try {
      const ps = await dadi(['ps', '--json']);
      const devices = (checkJsonOutput('ps', ps.stdout) as { devices: Array<{ target: string }> }).devices;
      expect(devices.some((d: { target: string }) => d.target === dir)).toBe(true);
    } finally {
      const u = await dadi(['umount', dir]);
      expect(u.code, u.stderr).toBe(0);
    }
  });

  it('commits a container as a new image; a fresh run sees it, the original is unchanged', async () => {
    const name = names[0]!;
    const w = await dadi([
      'run',
      '--name',
      name,
      ref,
      '--',
      '/bin/sh',
      '-c',
      'echo committed-content > /new-file; rm /etc/os-release; mkdir /made-here',
    ]);
    expect(w.code, w.stderr).toBe(0);
    const c = await dadi(['commit', name, `${reg.host}/dadi/run:v2`]);
    expect(c.code, c.stderr).toBe(0);
    const v2 = await dadi([
      'run',
      '--rm',
      `${reg.host}/dadi/run:v2`,
      '--',
      '/bin/sh',
      '-c',
      'cat /new-file; ls -d /made-here; test -e /etc/os-release || echo gone',
    ]);
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.stdout).toContain('committed-content');
    expect(v2.stdout).toContain('/made-here');
    expect(v2.stdout).toContain('gone');
    const v1 = await dadi([
      'run',
      '--rm',
      ref,
      '--',
      '/bin/sh',
      '-c',
      'test -e /new-file && echo leaked; cat /etc/os-release',
    ]);
    expect(v1.code, v1.stderr).toBe(0);
    expect(v1.stdout).not.toContain('leaked');
    expect(v1.stdout.length).toBeGreaterThan(0);
    const i = await dadi(['inspect', '--json', `${reg.host}/dadi/run:v2`]);
    expect((checkJsonOutput('inspect', i.stdout) as { layers: unknown[] }).layers).toHaveLength(2);
  });
});
