// The registry client's blob reads through an overlaybd-style P2P proxy (`<proxy>/<upstream blob
// URL>`, Range and Authorization kept): `dadi cat` of a converted image in a token-auth registry,
// with DADI_P2P_PROXY or --p2p-proxy pointing at a small proxy started here, gives the file's bytes,
// and the proxy saw the ranged blob GETs with the registry's bearer token. A proxy that is down
// means reading from the registry directly, with a warning; a malformed setting is refused.

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patternBytes } from '../../src/cache/testing.js';
import { convertImage } from '../../src/convert/index.js';
import { RegistryClient } from '../../src/registry/client.js';
import { run, runDadi } from '../cli.js';
import { TEST_SEED } from '../seed.js';
import { writeImageLayout } from './convert-helpers.js';
import { freePort, haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const HAVE = haveRegistry('P2P proxy client');

interface Seen {
  method: string;
  /** The upstream URL the proxy was asked for. */
  upstream: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
}

/** A minimal overlaybd P2P proxy: `GET /dadip2p/<upstream URL>` forwarded with Range and Authorization. */
async function startP2pProxy(): Promise<{ url: string; seen: Seen[]; stop: () => Promise<void> }> {
  const seen: Seen[] = [];
  const prefix = '/dadip2p/';
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '';
    if (!path.startsWith(prefix)) {
      res.writeHead(400).end('not a proxy URL');
      return;
    }
    const upstream = path.slice(prefix.length);
    const entry: Seen = {
      method: req.method ?? '',
      upstream,
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
    };
    seen.push(entry);
    const headers: Record<string, string> = {};
    if (req.headers.range) headers.range = req.headers.range;
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const out = httpRequest(upstream, { method: req.method, headers }, (up) => {
      entry.status = up.statusCode ?? 0;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    out.end();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/dadip2p`,
    seen,
    stop: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

describe.skipIf(!HAVE)('blob reads through an overlaybd-style P2P proxy', () => {
  let dir: string;
  let reg: TestRegistry;
  let proxy: Awaited<ReturnType<typeof startP2pProxy>>;
  let ref: string;
  let env: NodeJS.ProcessEnv;
  // Text, so `dadi cat` output compares as a string: 3 MiB of seeded hex, several range reads.
  const content = patternBytes(1536 << 10, TEST_SEED + 13).toString('hex');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-p2p-proxy-'));
    reg = await startRegistry({ auth: 'token' });
    proxy = await startP2pProxy();
    await mkdir(join(dir, 'r/data'), { recursive: true });
    await writeFile(join(dir, 'r/data/file.txt'), content);
    await run('tar', ['--numeric-owner', '-cf', 'l.tar', '-C', 'r', '.'], { cwd: dir });
    await writeImageLayout(join(dir, 'src'), [await readFile(join(dir, 'l.tar'))], 'v1');
    const client = new RegistryClient({ credentials: reg.credentials, p2pProxy: '' });
    try {
      ref = `${reg.host}/p2p/app:dadi`;
      await convertImage(`oci:${join(dir, 'src')}:v1`, ref, { client, workDir: join(dir, 'work') });
    } finally {
      await client.close();
    }
    env = {
      DADI_STATE: join(dir, 'state'),
      DADI_CACHE_DIR: join(dir, 'cache'),
      DADI_REGISTRY_USER: reg.credentials!.username,
      DADI_REGISTRY_PASSWORD: reg.credentials!.password,
    };
  });

  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('dadi cat reads through the proxy: right bytes, ranged GETs of the blob URL with the bearer token', async () => {
    const cat = await runDadi(['cat', '--no-cache', ref, '/data/file.txt'], {
      env: { ...env, DADI_P2P_PROXY: `${proxy.url}/` },
    });
    expect(cat.stderr).toBe('');
    expect(cat.code).toBe(0);
    expect(cat.stdout).toBe(content);
    const blobs = proxy.seen.filter((s) => s.upstream.startsWith(`${reg.url}/v2/p2p/app/blobs/sha256:`));
    // Nothing but blob GETs went to the proxy (manifests, tokens and HEADs go to the registry).
    expect(blobs).toEqual(proxy.seen);
    const served = blobs.filter((s) => s.status === 206);
    expect(served.length).toBeGreaterThan(3);
    for (const s of served) {
      expect(s.method).toBe('GET');
      expect(s.range).toMatch(/^bytes=\d+-\d+$/);
      expect(s.authorization).toMatch(/^Bearer /);
    }
  });

  it('--p2p-proxy does the same; a proxy that is down means the registry directly, with a warning', async () => {
    const before = proxy.seen.length;
    const viaFlag = await runDadi(['cat', '--no-cache', '--p2p-proxy', proxy.url, ref, '/data/file.txt'], { env });
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
    expect(viaFlag.stdout).toBe(content);
    expect(proxy.seen.length).toBeGreaterThan(before);

    const closed = `http://127.0.0.1:${await freePort()}/dadip2p`;
    const down = await runDadi(['cat', '--no-cache', ref, '/data/file.txt'], {
      env: { ...env, DADI_P2P_PROXY: closed },
    });
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toBe(content);
    expect(down.stderr).toContain(`dadi: P2P proxy ${closed} unreachable (ECONNREFUSED)`);
    expect(down.stderr.match(/unreachable/g)).toHaveLength(1);
  });

  it('a malformed setting is refused, naming where it came from', async () => {
    const bad = await runDadi(['cat', '--no-cache', ref, '/data/file.txt'], {
      env: { ...env, DADI_P2P_PROXY: 'ftp://127.0.0.1:1/x' },
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/^dadi: DADI_P2P_PROXY: P2P proxy "ftp:\/\/127.0.0.1:1\/x" must be http/);
  });
});
