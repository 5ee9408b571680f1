// `--json` outputs of real command runs checked against their documented schemas
// (src/cli/json-output.ts, docs/json-output.md): local layouts and layers, the block cache, and a
// registry (convert, inspect, blob push/pull, digests add). The daemon's (status, mount, umount)
// are checked in daemon-metrics.test.ts, run --timings --json in run-remote.test.ts.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkJsonOutput } from '../../src/cli/json-output.js';
import { runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const HAVE = haveFixtures('--json outputs') && haveRegistry('--json outputs');

describe.skipIf(!HAVE)('--json outputs match their schemas', () => {
  let dir: string;
  let reg: TestRegistry;
  let layout: string;
  let layerFile: string;
  const env = () => ({ DADI_STATE: join(dir, 'state'), DADI_CACHE_DIR: join(dir, 'cache') });
  /** Run `dadi ARGS --json`, expect success, check stdout against `command`'s schema. */
  const json = async <T>(command: string, args: string[]): Promise<T> => {
    const r = await runDadi([...args, '--json'], { env: env() });
    expect(r.code, `dadi ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return checkJsonOutput(command, r.stdout) as T;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-json-'));
    reg = await startRegistry({ auth: 'none' });
    layout = `oci:${join(dir, 'out')}:dadi`;
    const c = await json<{ layers: Array<{ digest: string }> }>('convert', [
      'convert',
      '--workdir',
      join(dir, 'w'),
      `oci:${fixture('oci/hello-world')}:amd64`,
      layout,
    ]);
    layerFile = join(dir, 'out/blobs/sha256', c.layers[0]!.digest.slice(7));
  }, 120_000);

  afterAll(async () => {
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('image browsing and export', async () => {
    const ls = await json<Array<{ name: string }>>('ls', ['ls', layout, '/']);
    expect(ls.map((e) => e.name)).toContain('hello');
    expect(await json('stat', ['stat', layout, '/hello'])).toMatchObject({ path: '/hello', kind: 'file' });
    const ex = await json<{ bytesWritten: number }>('image export', ['image', 'export', join(dir, 'disk.raw'), layout]);
    expect(ex.bytesWritten).toBeGreaterThan(0);
  });

  it('layers and ZFiles', async () => {
    expect(await json('layer inspect', ['layer', 'inspect', layerFile])).toMatchObject({
      wrapping: ['tar', 'zfile', 'lsmt'],
    });
    const ex = await json<{ layers: string[] }>('layer export', ['layer', 'export', join(dir, 'l.raw'), layerFile]);
    expect(ex.layers).toEqual([layerFile]);
    expect(await json('zfile verify', ['zfile', 'verify', layerFile])).toMatchObject({ ok: true });
  });

  it('the block cache, traces and devices', async () => {
    expect(await json('cache ls', ['cache', 'ls'])).toMatchObject({ dir: join(dir, 'cache'), entries: [] });
    expect(await json('cache gc', ['cache', 'gc'])).toMatchObject({ evicted: [] });
    expect(await json('cache clear', ['cache', 'clear'])).toMatchObject({ evicted: [], freedBytes: 0 });
    expect(await json('trace ls', ['trace', 'ls'])).toEqual([]);
    expect(await json('ps', ['ps'])).toEqual({ devices: [], containers: [] });
  });

  it('a registry: convert, inspect, digests add, blob push and pull', async () => {
    const target = `${reg.host}/json/hello:dadi`;
    await json('convert', ['convert', '--workdir', join(dir, 'w'), `oci:${fixture('oci/hello-world')}:amd64`, target]);
    const info = await json<{ layers: Array<{ digest: string; overlaybd: boolean }> }>('inspect', ['inspect', target]);
    expect(info.layers[0]!.overlaybd).toBe(true);
    const added = await json<{ layers: Array<{ added: boolean }> }>('digests add', ['digests', 'add', target]);
    expect(added.layers.map((l) => l.added)).toEqual([false]);
    const pushed = await json<{ digest: string }>('blob push', ['blob', 'push', layerFile, `${reg.host}/json/blobs`]);
    expect(pushed.digest).toBe(info.layers[0]!.digest);
    const out = join(dir, 'pulled.blob');
    const pulled = await json<{ size: number }>('blob pull', [
      'blob',
      'pull',
      `${reg.host}/json/blobs@${pushed.digest}`,
      out,
    ]);
    expect(pulled.size).toBeGreaterThan(0);
    expect(await readdir(dir)).toContain('pulled.blob');
  });
});
