// containerd's hosts.toml: parsing (order, paths, capabilities, TLS files, errors naming the file)
// and the registry client routing over the hosts against local HTTP servers: a mirror that has
// the blob serves it, one that answers 404 or cannot be reached passes to the next host, a
// pull-only mirror is not asked for manifests, and each host gets its own headers.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Of } from '../oci/digest.js';
import { RegistryClient } from './client.js';
import { hostsDirLookup, loadHostsFile } from './hosts.js';
import { parseReference } from './reference.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-hosts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function hostsFile(registry: string, text: string): Promise<string> {
  await mkdir(join(dir, registry), { recursive: true });
  const file = join(dir, registry, 'hosts.toml');
  await writeFile(file, text);
  return file;
}

describe('hosts.toml', () => {
  it('lists the mirrors in file order, then the server, with paths, capabilities and TLS files', async () => {
    await writeFile(join(dir, 'ca.pem'), 'CA PEM');
    await mkdir(join(dir, 'reg.lan'), { recursive: true });
    await writeFile(join(dir, 'reg.lan', 'mirror.crt'), 'MIRROR CA');
    await writeFile(join(dir, 'reg.lan', 'client.cert'), 'CERT');
    await writeFile(join(dir, 'reg.lan', 'client.key'), 'KEY');
    const file = await hostsFile(
      'reg.lan',
      [
        'server = "https://reg.lan:5443"',
        `ca = "${join(dir, 'ca.pem')}"`,
        '[host."http://mirror-b.lan:5000"]',
        '  capabilities = ["pull"]',
        '[host."https://mirror-a.lan/registry"]',
        '  capabilities = ["pull", "resolve"]',
        '  ca = ["mirror.crt"]',
        '  client = "client.cert"',
        '  skip_verify = true',
        '  [host."https://mirror-a.lan/registry".header]',
        '    x-mirror = ["a", "b"]',
        '[host."https://proxy.lan/custom/api"]',
        '  override_path = true',
        '',
      ].join('\n'),
    );
    const hosts = await loadHostsFile(file, 'reg.lan');
    expect(hosts.map((h) => `${h.origin}${h.path} ${[...h.capabilities].join(',')}`)).toEqual([
      'http://mirror-b.lan:5000/v2 pull',
      'https://mirror-a.lan/registry/v2 pull,resolve',
      'https://proxy.lan/custom/api pull,resolve,push',
      'https://reg.lan:5443/v2 pull,resolve,push',
    ]);
    expect(hosts[1]!.tls).toEqual({
      ca: [Buffer.from('MIRROR CA')],
      cert: Buffer.from('CERT'),
      key: Buffer.from('KEY'),
      skipVerify: true,
    });
    expect(hosts[1]!.headers).toEqual({ 'x-mirror': 'a, b' });
    expect(hosts[3]!.tls).toEqual({ ca: [Buffer.from('CA PEM')] });
  });

  it('defaults the server to https://<registry> (docker.io: registry-1.docker.io)', async () => {
    const file = await hostsFile('docker.io', '[host."https://mirror.gcr.io"]\n');
    const hosts = await loadHostsFile(file, 'docker.io');
    expect(hosts.map((h) => h.origin)).toEqual(['https://mirror.gcr.io', 'https://registry-1.docker.io']);
  });

  it('finds <host>, then <host_port>, then _default; none configured is undefined', async () => {
    await hostsFile('under_5000', 'server = "http://under:5000"\n');
    await hostsFile('_default', 'server = "http://fallback.lan"\n');
    const lookup = hostsDirLookup(dir);
    expect((await lookup('under:5000'))?.map((h) => h.origin)).toEqual(['http://under:5000']);
    expect((await lookup('other.lan'))?.map((h) => h.origin)).toEqual(['http://fallback.lan']);
    await rm(join(dir, '_default'), { recursive: true });
    expect(await hostsDirLookup(dir)('other.lan')).toBeUndefined();
  });

  it.each([
    ['server = [1', /hosts\.toml: /],
    ['server = "ftp://x"', /server: ftp: is not http or https/],
    ['[host."https://m"]\ncapabilities = ["fetch"]', /capabilities must be a list of pull, resolve, push/],
    ['ca = "missing.pem"', /server: cannot read .*missing\.pem: ENOENT/],
    ['skip_verify = "yes"', /skip_verify must be true or false/],
  ])('refuses %j, naming the file', async (text, want) => {
    const file = await hostsFile('bad.lan', text);
    const err = await loadHostsFile(file, 'bad.lan').catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(want);
  });
});

describe('the registry client over configured hosts', () => {
  const BLOB = Buffer.from('blob bytes served by whichever host has them');
  const DIGEST = sha256Of(BLOB);
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A host answering blob GETs under `prefix` (or 404), recording each request's path and headers. */
  async function host(prefix: string, has: boolean) {
    const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
    const s = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      if (has && req.url === `${prefix}/app/blobs/${DIGEST}`) res.end(BLOB);
      else res.writeHead(404).end();
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const a = s.address();
    return { origin: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`, seen };
  }

  /** An origin nothing listens on (a port just released). */
  async function closedPort(): Promise<string> {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const a = s.address();
    await new Promise((r) => s.close(r));
    return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  function client() {
    return new RegistryClient({ credentials: undefined, hosts: hostsDirLookup(dir), backoffBaseMs: 5 });
  }

  it('reads from the first mirror that has the blob, passing over a 404 and a dead mirror', async () => {
    const empty = await host('/v2', false);
    const mirror = await host('/cache/v2', true);
    const server = await host('/v2', true);
    const dead = await closedPort();
    await hostsFile(
      'reg.test',
      [
        `server = "${server.origin}"`,
        `[host."${dead}"]`,
        `[host."${empty.origin}"]`,
        `[host."${mirror.origin}/cache"]`,
        '  [host."' + `${mirror.origin}/cache` + '".header]',
        '    x-from = "hosts.toml"',
        '',
      ].join('\n'),
    );
    const c = client();
    try {
      const got = await c.fetchBlob({ registry: 'reg.test', repository: 'app' }, DIGEST, { maxSize: 1 << 20 });
      expect(Buffer.from(got)).toEqual(BLOB);
    } finally {
      await c.close();
    }
    expect(empty.seen.map((r) => r.url)).toEqual([`/v2/app/blobs/${DIGEST}`]);
    expect(mirror.seen.map((r) => [r.url, r.headers['x-from']])).toEqual([
      [`/cache/v2/app/blobs/${DIGEST}`, 'hosts.toml'],
    ]);
    expect(server.seen).toEqual([]);
  });

  it('asks only resolve-capable hosts for manifests', async () => {
    const pullOnly = await host('/v2', true);
    const server = await host('/v2', true);
    await hostsFile(
      'resolve.test',
      [`server = "${server.origin}"`, `[host."${pullOnly.origin}"]`, '  capabilities = ["pull"]', ''].join('\n'),
    );
    const c = client();
    try {
      await expect(c.resolveImage(parseReference('resolve.test/app:v1'))).rejects.toThrow(/manifest not found/);
    } finally {
      await c.close();
    }
    expect(pullOnly.seen).toEqual([]);
    expect(server.seen.map((r) => r.url)).toEqual(['/v2/app/manifests/v1']);
  });
});
