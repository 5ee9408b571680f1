// bin/dadi, the installed command: the daemon's client commands start from their one-file bundle
// (scripts/bundle-cli.ts) without $NODE_EXTRA_CA_CERTS (moved aside for the daemon they may start),
// `dadi pull` and `dadi convert` from their own bundles and every other command from bin/dadi.js,
// all with the environment untouched. Here they are built from
// the sources into a private tree laid out as an installed dadi (bin/, dist/cli/).

import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleClientCommands, bundleStartCommands } from '../../scripts/bundle-cli.js';
import { convertImage } from '../../src/convert/index.js';
import { run } from '../cli.js';
import { tarOf } from '../tar-build.js';
import { writeImageLayout } from './convert-helpers.js';

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
  await bundleStartCommands({ root: src, runtimeRoot: src, outDir: dist, ext: '.ts' });
  await bundleClientCommands({
    entry: join(src, 'cli/entry.ts'),
    outfile: join(dist, 'cli/entry.js'),
    from: { root: src, runtimeRoot: src },
  });
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

  it("starts the bundles with V8's code cache the build wrote, and without it if V8 rejects it", async () => {
    const state = join(dir, 'state');
    const ps = ['ps', '--json', '--state', state];
    const cached = await run(launcher, ps, { env: { DADI_DEBUG: '1' } });
    expect(cached.stderr).toBe('');
    expect(JSON.parse(cached.stdout)).toEqual({ devices: [], containers: [] });
    const pull = await run(
      launcher,
      [
        'pull',
        '--containerd-address',
        join(dir, 'none.sock'),
        '--snapshotter-address',
        join(dir, 'none.sock'),
        'x/y:z',
      ],
      {
        env: { DADI_DEBUG: '1' },
      },
    );
    expect(pull.stderr).not.toMatch(/bundle\.cache/);
    // A cache that does not match (another node's, a damaged file) is compiled around.
    const cache = join(dir, 'dist/cli/client.bundle.cache');
    const good = await readFile(cache);
    try {
      await writeFile(cache, good.subarray(0, 64));
      const r = await run(launcher, ps, { env: { DADI_DEBUG: '1' } });
      expect(r.stderr).toMatch(/^dadi: client\.bundle\.cache rejected by V8: compiling without it$/m);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ devices: [], containers: [] });
    } finally {
      await writeFile(cache, good);
    }
  });

  it('reports a client command error as the whole CLI does', async () => {
    const r = await run(launcher, ['umount', join(dir, 'nothing'), '--state', join(dir, 'state')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dadi: no dadi daemon answers on .*dadi\.sock$/m);
  });

  it('runs dadi pull from its bundle (a request to the snapshotter), without loading NODE_EXTRA_CA_CERTS', async () => {
    // The bundle's first step is the request to the snapshotter named here, which is not running:
    // that answer is the pull bundle's (the whole CLI would name its loader's failure instead).
    const r = await run(
      launcher,
      [
        'pull',
        '--containerd-address',
        join(dir, 'no-containerd.sock'),
        '--snapshotter-address',
        join(dir, 'no-snapshotter.sock'),
        '127.0.0.1:1/app:v1',
      ],
      { env: { NODE_EXTRA_CA_CERTS: MISSING_CA } },
    );
    expect(r.stderr).not.toMatch(CA_WARNING);
    expect(r.stderr).toMatch(/^dadi: dadi snapshotter .*no-snapshotter\.sock: not running \(ENOENT\)$/m);
    expect(r.code).toBe(1);
  });

  it('dadi pull tells the snapshotter its request as it starts, then sends it', async () => {
    const address = join(dir, 'hinted.sock');
    const lines: unknown[] = [];
    const server = createServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const msg = JSON.parse(buf.slice(0, nl)) as { ahead?: unknown; ref?: string };
        lines.push(msg);
        const reply = {
          name: msg.ref,
          manifestDigest: `sha256:${'c'.repeat(64)}`,
          layers: 1,
          registryBytes: 9,
          steps: [],
        };
        s.end(msg.ahead ? '{"ahead":true}\n' : `${JSON.stringify({ reply })}\n`);
      });
    });
    await new Promise<void>((r) => server.listen(`${address}.pull`, r));
    try {
      const args = [
        'pull',
        '--containerd-address',
        '/c.sock',
        '-n',
        'ns1',
        '--snapshotter-address',
        address,
        'reg.lan:5000/a:v1',
      ];
      const r = await run(launcher, args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('reg.lan:5000/a:v1');
      const request = { ref: 'reg.lan:5000/a:v1', containerdAddress: '/c.sock', namespace: 'ns1', snapshotter: 'dadi' };
      // The hint leaves first (before the bundle loads); the two go on connections of their own.
      expect(lines).toHaveLength(2);
      expect(lines).toEqual(expect.arrayContaining([{ ahead: request }, request]));
    } finally {
      server.close();
    }
  });

  it('runs dadi convert from its bundle, its worker threads from the tree: the image the library makes', async () => {
    // 10 MiB that gzip cannot shrink: the conversion decodes on its unpack thread and compresses
    // ahead on the ZFile workers (both started from the bundle), as a real layer's does.
    const layer = gzipSync(
      tarOf([
        { name: 'data/', type: '5', mode: 0o755 },
        { name: 'data/noise', type: '0', data: randomBytes(10 << 20), mode: 0o644 },
        { name: 'data/hello', type: '0', data: Buffer.from('hello\n'), mode: 0o644 },
      ]),
    );
    const layout = join(dir, 'src-layout');
    await writeImageLayout(layout, [layer], 'v1');
    const viaBundle = join(dir, 'out-bundle');
    const r = await run(launcher, [
      'convert',
      '--no-reuse',
      '--json',
      '--workdir',
      join(dir, 'wd-bundle'),
      `oci:${layout}:v1`,
      `oci:${viaBundle}:c`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = JSON.parse(r.stdout) as { manifest: { digest: string } };
    const want = await convertImage(`oci:${layout}:v1`, `oci:${join(dir, 'out-library')}:c`, {
      reuse: false,
      workDir: join(dir, 'wd-library'),
    });
    expect(got.manifest.digest).toBe(want.manifest.digest);
  }, 120_000);

  it('gives every other command the environment as it is', async () => {
    const r = await run(launcher, ['--version'], { env: { NODE_EXTRA_CA_CERTS: MISSING_CA } });
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(r.stderr).toMatch(CA_WARNING);
  });
});
