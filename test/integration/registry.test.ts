// The registry client against Debian's docker-registry in its three auth modes: push blobs and
// manifests with our client, pull them back, ranged reads byte-equal, RemoteBlob random reads,
// 416, mounts, upload sinks, login, wrong passwords, token refresh, redirects; skopeo cross-checks.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DadiError } from '../../src/errors.js';
import { encodeJson, MediaType, sha256Of } from '../../src/oci/index.js';
import {
  defaultCredentials,
  login,
  parseReference,
  RegistryClient,
  RemoteBlob,
  type RepoRef,
} from '../../src/registry/index.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { missing, requireOrSkip } from '../require.js';
import { testRandom } from '../seed.js';
import { startFaultProxy } from './fault-proxy.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const run = promisify(execFile);
const HAVE = haveRegistry('registry integration tests');
const HAVE_SKOPEO =
  HAVE && requireOrSkip('skopeo cross-check', missing({ tools: ['skopeo'], hint: 'apt-get install skopeo' }));

/** Deterministic pseudo-random bytes (fast, reproducible). */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n + 3);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b.subarray(0, n);
}

function client(reg: TestRegistry, extra: ConstructorParameters<typeof RegistryClient>[0] = {}) {
  return new RegistryClient({ credentials: reg.credentials, backoffBaseMs: 10, ...extra });
}

/** Push a one-layer image (layer, config, OCI manifest under `tag`). */
async function pushImage(c: RegistryClient, repo: RepoRef, layer: Buffer, tag: string, chunkBytes?: number) {
  const l = await c.pushBlob(repo, layer, chunkBytes ? { chunkBytes } : {});
  const cfg = encodeJson({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [l.digest] } });
  const cd = await c.pushBlob(repo, cfg);
  const man = encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: cd.digest, size: cd.size },
    layers: [
      {
        mediaType: MediaType.ociLayer,
        digest: l.digest,
        size: l.size,
        annotations: { 'containerd.io/snapshot/overlaybd/blob-digest': l.digest },
      },
    ],
  });
  const md = await c.putManifest({ ...repo, tag }, man, MediaType.ociManifest);
  return { layer: l, config: cd, manifestDigest: md, manifest: man };
}

describe.skipIf(!HAVE).each(['none', 'htpasswd', 'token'] as const)('registry (auth: %s)', (mode) => {
  let reg: TestRegistry;
  let c: RegistryClient;
  const layer = pattern(5 << 20, 7);
  let repo: RepoRef;
  let pushed: Awaited<ReturnType<typeof pushImage>>;

  beforeAll(async () => {
    reg = await startRegistry({ auth: mode });
    c = client(reg);
    repo = { registry: reg.host, repository: 'dadi/it' };
    pushed = await pushImage(c, repo, layer, 'v1', 2 << 20); // chunked: 3 PATCHes
  });
  afterAll(async () => {
    await c?.close();
    await reg?.stop();
  });

  it('pulls back what was pushed: manifest, config, blob', async () => {
    expect(pushed.layer.how).toBe('uploaded');
    const img = await c.resolveImage(parseReference(`${reg.host}/dadi/it:v1`));
    expect(img.digest).toBe(pushed.manifestDigest);
    expect(img.bytes.equals(pushed.manifest)).toBe(true);
    expect(img.manifest.layers[0]!.annotations?.['containerd.io/snapshot/overlaybd/blob-digest']).toBe(
      pushed.layer.digest,
    );
    const { config } = await c.getImageConfig(repo, img.manifest.config);
    expect(config.rootfs.diff_ids).toEqual([pushed.layer.digest]);
    const byDigest = await c.getManifest({ ...repo, digest: pushed.manifestDigest });
    expect(byDigest.digest).toBe(pushed.manifestDigest);
    expect(await c.headManifest({ ...repo, tag: 'v1' })).toEqual({
      digest: pushed.manifestDigest,
      size: pushed.manifest.length,
      mediaType: MediaType.ociManifest,
    });
    expect(await c.headManifest({ ...repo, tag: 'nope' })).toBeUndefined();
    expect(await c.listTags(repo)).toEqual(['v1']);
    const parts: Buffer[] = [];
    for await (const part of c.blobStream(repo, pushed.layer.digest)) parts.push(part);
    const whole = Buffer.concat(parts);
    expect(whole.equals(layer)).toBe(true);
    await expect(c.getManifest({ ...repo, tag: 'missing' })).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('ranged reads are byte-equal; 416 is ERANGE; the end gives a short read', async () => {
    const random = testRandom();
    for (let i = 0; i < 20; i++) {
      const off = Math.floor(random() * layer.length);
      const len = 1 + Math.floor(random() * Math.min(300_000, layer.length - off));
      const buf = Buffer.alloc(len);
      expect(await c.readBlob(repo, pushed.layer.digest, buf, off)).toBe(len);
      expect(buf.equals(layer.subarray(off, off + len))).toBe(true);
    }
    await expect(c.readBlob(repo, pushed.layer.digest, Buffer.alloc(10), layer.length + 100)).rejects.toMatchObject({
      code: 'ERANGE',
    });
    const tail = Buffer.alloc(100);
    expect(await c.readBlob(repo, pushed.layer.digest, tail, layer.length - 40)).toBe(40);
    expect(tail.subarray(0, 40).equals(layer.subarray(layer.length - 40))).toBe(true);
  });

  it('RemoteBlob: random reads byte-equal, large reads split, counters kept', async () => {
    const blob = await RemoteBlob.open(c, { ...repo, digest: pushed.layer.digest }, undefined, {
      maxRangeBytes: 1 << 20,
      parallel: 4,
    });
    expect(blob.size).toBe(layer.length);
    expect(blob.stats.quickestGetMs).toBeUndefined();
    const random = testRandom();
    for (let i = 0; i < 100; i++) {
      const off = Math.floor(random() * layer.length);
      const len = 1 + Math.floor(random() * (i % 10 === 0 ? 3 << 20 : 64 << 10));
      const buf = Buffer.alloc(len);
      const n = await blob.read(buf, off);
      expect(n).toBe(Math.min(len, layer.length - off));
      expect(buf.subarray(0, n).equals(layer.subarray(off, off + n))).toBe(true);
    }
    expect(await blob.read(Buffer.alloc(10), layer.length)).toBe(0);
    expect(blob.stats.reads).toBe(100);
    expect(blob.stats.rangeRequests).toBeGreaterThan(100);
    // What a small GET took at best (neighbour prefetch asks it): a duration, kept as the minimum.
    expect(blob.stats.quickestGetMs).toBeGreaterThan(0);
    await blob.close();
  });

  it('skips existing blobs, mounts across repositories, uploads through a Sink', async () => {
    expect((await c.pushBlob(repo, layer)).how).toBe('exists');
    const other = { registry: reg.host, repository: 'other/repo' };
    expect(await c.mountBlob(other, pushed.layer.digest, repo.repository)).toBe(true);
    expect(await c.statBlob(other, pushed.layer.digest)).toBe(layer.length);
    const third = { registry: reg.host, repository: 'third/repo' };
    expect((await c.pushBlob(third, layer, { mountFrom: repo.repository })).how).toBe('mounted');
    // mount of a blob the source lacks: falls back to an upload
    const fresh = pattern(1000, 99);
    expect((await c.pushBlob(third, fresh, { mountFrom: 'nowhere/repo' })).how).toBe('uploaded');

    const sink = await c.createBlobUpload(repo, { chunkBytes: 1 << 20 });
    const data = pattern(2_500_000, 3);
    for (let off = 0; off < data.length; off += 300_000) await sink.write(data.subarray(off, off + 300_000));
    await sink.end();
    expect(sink.result).toEqual({ digest: sha256Of(data), size: data.length });
    expect((await c.fetchBlob(repo, sha256Of(data))).equals(data)).toBe(true);
  });

  it('the registry rejects a wrong digest on upload (ECORRUPT)', async () => {
    const data = pattern(5000, 11);
    await expect(c.pushBlob(repo, data, { digest: sha256Of('something else') })).rejects.toMatchObject({
      code: 'ECORRUPT',
    });
  });

  it('selects the platform from an index', async () => {
    const amd = await pushImage(c, repo, pattern(100, 1), 'amd');
    const arm = await pushImage(c, repo, pattern(100, 2), 'arm');
    const index = encodeJson({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        {
          mediaType: MediaType.ociManifest,
          digest: arm.manifestDigest,
          size: arm.manifest.length,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        },
        {
          mediaType: MediaType.ociManifest,
          digest: amd.manifestDigest,
          size: amd.manifest.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    });
    await c.putManifest({ ...repo, tag: 'multi' }, index, MediaType.ociIndex);
    const ref = parseReference(`${reg.host}/dadi/it:multi`);
    expect((await c.resolveImage(ref, { platform: { os: 'linux', architecture: 'amd64' } })).digest).toBe(
      amd.manifestDigest,
    );
    const r = await c.resolveImage(ref, { platform: { os: 'linux', architecture: 'arm64' } });
    expect(r.digest).toBe(arm.manifestDigest);
    expect(r.indexes[0]!.digest).toBe(sha256Of(index));
    await expect(c.resolveImage(ref, { platform: { os: 'linux', architecture: 's390x' } })).rejects.toThrow(
      /no image for platform linux\/s390x \(available: linux\/arm64\/v8, linux\/amd64\)/,
    );
  });

  it.skipIf(!HAVE_SKOPEO)('skopeo sees what we pushed', async () => {
    const args = ['inspect', '--tls-verify=false'];
    if (reg.credentials) args.push('--creds', `${reg.credentials.username}:${reg.credentials.password}`);
    args.push(`docker://${reg.host}/dadi/it:v1`);
    const { stdout } = await run('skopeo', args, { env: { ...process.env, HOME: reg.dir } });
    const j = JSON.parse(stdout) as { Digest: string; Layers: string[]; Architecture: string };
    expect(j.Digest).toBe(pushed.manifestDigest);
    expect(j.Layers).toEqual([pushed.layer.digest]);
    expect(j.Architecture).toBe('amd64');
  });

  // Credential cases exist only for the modes that check credentials.
  if (mode !== 'none')
    it('wrong or missing credentials: EAUTH naming the registry, never the password', async () => {
      const secret = 'Wr0ng-Pa55word-XYZ';
      const bad = client(reg, { credentials: { username: reg.credentials!.username, password: secret } });
      try {
        for (const op of [
          () => bad.statBlob(repo, pushed.layer.digest),
          () => bad.ping(reg.host),
          () => bad.pushBlob(repo, pattern(10, 5)),
        ]) {
          const e = await op().catch((x: unknown) => x);
          expect(e).toBeInstanceOf(DadiError);
          expect((e as DadiError).code).toBe('EAUTH');
          expect((e as DadiError).message).toContain(reg.host);
          expect((e as DadiError).message).not.toContain(secret);
          expect(String((e as DadiError).stack)).not.toContain(secret);
        }
      } finally {
        await bad.close();
      }
      const anon = client(reg, { credentials: defaultCredentials({ env: {}, dockerConfig: false }) });
      try {
        await expect(anon.statBlob(repo, pushed.layer.digest)).rejects.toThrow(
          /authentication required and no credentials/,
        );
      } finally {
        await anon.close();
      }
    });

  if (mode !== 'none')
    it('login verifies credentials and writes config.json (0600) that later clients use', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'dadi-login-'));
      try {
        const path = join(dir, 'docker', 'config.json');
        await expect(
          login(reg.host, { username: reg.credentials!.username, password: 'nope-bad' }, { configPath: path }),
        ).rejects.toMatchObject({
          code: 'EAUTH',
        });
        expect(existsSync(path)).toBe(false);
        const r = await login(reg.host, reg.credentials!, { configPath: path });
        expect(r).toEqual({ stored: 'file', path });
        expect((await stat(path)).mode & 0o777).toBe(0o600);
        const cfg = JSON.parse(await readFile(path, 'utf8')) as { auths: Record<string, { auth: string }> };
        expect(Buffer.from(cfg.auths[reg.host]!.auth, 'base64').toString()).toBe(
          `${reg.credentials!.username}:${reg.credentials!.password}`,
        );
        const later = client(reg, { credentials: defaultCredentials({ env: {}, dockerConfig: path }) });
        try {
          expect(await later.statBlob(repo, pushed.layer.digest)).toBe(layer.length);
        } finally {
          await later.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

  // Not generated for token mode: the proxy cannot mint tokens for its presigned side; Basic mode
  // covers the header check.
  if (mode !== 'token')
    it('follows redirects to presigned URLs without sending Authorization', async () => {
      const upstreamAuthorization = reg.credentials
        ? `Basic ${Buffer.from(`${reg.credentials.username}:${reg.credentials.password}`).toString('base64')}`
        : undefined;
      const proxy = await startFaultProxy({
        target: reg.url,
        redirectBlobs: true,
        ...(upstreamAuthorization ? { upstreamAuthorization } : {}),
      });
      const pc = client(reg);
      try {
        const viaProxy = { registry: proxy.host, repository: repo.repository };
        const buf = Buffer.alloc(10_000);
        await pc.readBlob(viaProxy, pushed.layer.digest, buf, 12345);
        expect(buf.equals(layer.subarray(12345, 22345))).toBe(true);
        expect(proxy.counts.redirect).toBe(1);
        expect(proxy.counts.presigned).toBe(1);
        expect(proxy.leakedAuth).toBe(0);
        expect(pc.stats.redirects).toBe(1);
      } finally {
        await pc.close();
        await proxy.stop();
      }
    });
});

describe.skipIf(!HAVE)('token expiry and refresh', () => {
  it('renews a token before its announced expiry', async () => {
    const reg = await startRegistry({ auth: 'token', tokenExpiresIn: 1 });
    const c = client(reg);
    try {
      const repo = { registry: reg.host, repository: 'tok/a' };
      const d = (await c.pushBlob(repo, pattern(100, 1))).digest;
      const before = reg.tokenRequests.length;
      await new Promise((r) => setTimeout(r, 1100));
      expect(await c.statBlob(repo, d)).toBe(100);
      expect(reg.tokenRequests.length).toBe(before + 1);
      expect(c.stats.challenges).toBe(1); // renewed proactively: no new 401
    } finally {
      await c.close();
      await reg.stop();
    }
  });

  it('refreshes on 401 when the registry rejects an expired token', async () => {
    // The server announces 300 s but the JWT really expires ~2 s after issue (distribution allows
    // 60 s of clock leeway, hence the negative lifetime).
    const reg = await startRegistry({ auth: 'token', tokenExpiresIn: 300, tokenLifetime: -58 });
    const c = client(reg);
    try {
      const repo = { registry: reg.host, repository: 'tok/b' };
      const d = (await c.pushBlob(repo, pattern(100, 2))).digest;
      expect(await c.statBlob(repo, d)).toBe(100);
      const before = reg.tokenRequests.length;
      const challenges = c.stats.challenges;
      await new Promise((r) => setTimeout(r, 2100));
      expect(await c.statBlob(repo, d)).toBe(100);
      expect(reg.tokenRequests.length).toBe(before + 1);
      expect(c.stats.challenges).toBe(challenges + 1);
    } finally {
      await c.close();
      await reg.stop();
    }
  });

  it('a scope the user is not granted is EAUTH', async () => {
    const reg = await startRegistry({
      auth: 'token',
      grant: (_u, _t, name, actions) => (name.startsWith('ok/') ? actions : []),
    });
    const c = client(reg);
    try {
      expect((await c.pushBlob({ registry: reg.host, repository: 'ok/x' }, pattern(10, 1))).how).toBe('uploaded');
      const e = await c
        .pushBlob({ registry: reg.host, repository: 'denied/x' }, pattern(10, 1))
        .catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'EAUTH' });
      expect((e as Error).message).toContain(reg.host);
      expect((e as Error).message).toMatch(/access denied to .*denied\/x/);
    } finally {
      await c.close();
      await reg.stop();
    }
  });
});

/** Push one entry of an OCI layout (index or manifest, recursively) with our client. */
async function pushFromLayout(
  c: RegistryClient,
  repo: RepoRef,
  layout: string,
  desc: { mediaType: string; digest: string },
): Promise<void> {
  const blob = (d: string) => readFile(join(layout, 'blobs', 'sha256', d.slice(7)));
  const bytes = await blob(desc.digest);
  const doc = JSON.parse(bytes.toString('utf8')) as {
    manifests?: Array<{ mediaType: string; digest: string }>;
    config?: { digest: string };
    layers?: Array<{ digest: string }>;
  };
  for (const m of doc.manifests ?? []) await pushFromLayout(c, repo, layout, m);
  for (const b of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])])
    await c.pushBlob(repo, await blob(b.digest), { digest: b.digest });
  await c.putManifest({ ...repo, digest: desc.digest as `sha256:${string}` }, bytes, desc.mediaType);
}

describe.skipIf(!HAVE || !haveFixtures('multi-arch image from the hello-world layout'))(
  'the hello-world multi-arch image',
  () => {
    it('pushes Docker manifest lists, resolves per platform (nested index too), agrees with skopeo', async () => {
      const reg = await startRegistry();
      const c = client(reg);
      try {
        const layout = fixture('oci/hello-world');
        const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
          manifests: Array<{ mediaType: string; digest: string; annotations?: Record<string, string> }>;
        };
        const repo = { registry: reg.host, repository: 'library/hello' };
        for (const name of ['multi-arch', 'nested-index']) {
          const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name)!;
          await pushFromLayout(c, repo, layout, d);
          const bytes = await readFile(join(layout, 'blobs', 'sha256', d.digest.slice(7)));
          await c.putManifest({ ...repo, tag: name }, bytes, d.mediaType);
        }
        for (const [tag, platform] of [
          ['multi-arch', { os: 'linux', architecture: 'amd64' }],
          ['multi-arch', { os: 'linux', architecture: 'arm64' }],
          ['multi-arch', { os: 'linux', architecture: 'arm', variant: 'v7' }],
          ['nested-index', { os: 'linux', architecture: 'amd64' }],
        ] as const) {
          const ref = parseReference(`${reg.host}/library/hello:${tag}`);
          const img = await c.resolveImage(ref, { platform });
          expect(img.mediaType).toBe(MediaType.dockerManifest);
          const { config } = await c.getImageConfig(ref, img.manifest.config);
          expect(config.architecture).toBe(platform.architecture);
          for (const l of img.manifest.layers) expect((await c.fetchBlob(ref, l.digest)).length).toBe(l.size);
          if (HAVE_SKOPEO && tag !== 'nested-index') {
            // skopeo 1.9 does not descend into nested indexes; we do.
            const args = [
              'inspect',
              '--tls-verify=false',
              '--override-os',
              platform.os,
              '--override-arch',
              platform.architecture,
            ];
            if ('variant' in platform) args.push('--override-variant', platform.variant);
            const { stdout } = await run('skopeo', [...args, `docker://${reg.host}/library/hello:${tag}`], {
              env: { ...process.env, HOME: reg.dir },
            });
            const j = JSON.parse(stdout) as { Digest: string; Layers: string[] };
            expect(j.Digest).toBe(img.indexes[0]!.digest); // skopeo names the tagged list
            expect(j.Layers).toEqual(img.manifest.layers.map((l) => l.digest));
          }
        }
      } finally {
        await c.close();
        await reg.stop();
      }
    });
  },
);

describe.skipIf(!HAVE)('HTTPS registries', () => {
  it('trusts a custom CA, refuses an unknown one clearly, and sends a client certificate', async () => {
    const reg = await startRegistry({ tls: true, clientCert: true });
    const repo = { registry: reg.host, repository: 'tls/x' };
    const good = new RegistryClient({
      forceHttps: true,
      ca: reg.ca!,
      cert: reg.clientCert!,
      key: reg.clientKey!,
      credentials: undefined,
    });
    const noCa = new RegistryClient({ forceHttps: true, credentials: undefined, maxAttempts: 2 });
    const noCert = new RegistryClient({
      forceHttps: true,
      ca: reg.ca!,
      credentials: undefined,
      maxAttempts: 2,
      backoffBaseMs: 5,
    });
    try {
      const d = (await good.pushBlob(repo, pattern(3000, 4))).digest;
      expect(await good.statBlob(repo, d)).toBe(3000);
      const e = await noCa.statBlob(repo, d).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'EIO' });
      expect((e as Error).message).toMatch(/TLS error .*CA certificate/);
      const e2 = await noCert.statBlob(repo, d).catch((x: unknown) => x);
      expect(e2).toBeInstanceOf(DadiError);
    } finally {
      await Promise.all([good.close(), noCa.close(), noCert.close()]);
      await reg.stop();
    }
  });
});
