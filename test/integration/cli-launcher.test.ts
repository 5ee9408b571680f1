// bin/dadi, the installed command: the daemon's client commands start from the one-file bundle
// (scripts/bundle-cli.ts) without $NODE_EXTRA_CA_CERTS (moved aside for the daemon they may start),
// every other command from bin/dadi.js with the environment untouched. Here both are built from
// the sources into a private tree laid out as an installed dadi (bin/, dist/cli/).

import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleClientCommands } from '../../scripts/bundle-cli.js';
import { run } from '../cli.js';

const repo = resolve(import.meta.dirname, '../..');
/** A CA file that does not exist: node warns about it at start when it tries to load it. */
const MISSING_CA = '/nonexistent/dadi-test-ca.pem';
const CA_WARNING = /Ignoring extra certs from/;

let dir: string;
let launcher: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-launcher-'));
  const src = join(repo, 'src');
  const dist = join(dir, 'dist');
  // The bundles' dynamic imports point at the sources here (never reached by these commands).
  const bundle = (entry: string, out: string) =>
    bundleClientCommands({ entry: join(src, entry), outfile: join(dist, out), from: { root: src, runtimeRoot: src } });
  await bundle('cli/client-entry.ts', 'cli/client.bundle.js');
  await bundle('cli/entry.ts', 'cli/entry.js');
  await mkdir(join(dir, 'bin'));
  for (const f of ['dadi', 'dadi.js']) await copyFile(join(repo, 'bin', f), join(dir, 'bin', f));
  launcher = join(dir, 'bin/dadi');
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bin/dadi', () => {
  it('runs a client command from the bundle, without loading NODE_EXTRA_CA_CERTS', async () => {
    const state = join(dir, 'state');
    const r = await run(launcher, ['ps', '--json', '--state', state], { env: { NODE_EXTRA_CA_CERTS: MISSING_CA } });
    expect(r.stderr).not.toMatch(CA_WARNING);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ devices: [], containers: [] });
  });

  it('reports a client command error as the whole CLI does', async () => {
    const r = await run(launcher, ['umount', join(dir, 'nothing'), '--state', join(dir, 'state')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dadi: no dadi daemon answers on .*dadi\.sock$/m);
  });

  it('gives every other command the environment as it is', async () => {
    const r = await run(launcher, ['--version'], { env: { NODE_EXTRA_CA_CERTS: MISSING_CA } });
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(r.stderr).toMatch(CA_WARNING);
  });
});
