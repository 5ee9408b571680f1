// resolveRunImage against an in-memory registry: the layers are handed out before the config is
// fetched, a config kept by digest is not fetched again (the tag still is looked up), a kept
// file that does not hash to its name is a miss, not an answer, and a config embedded in the
// manifest (descriptor `data`) is used without a GET only when it is exactly the named bytes.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Of } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { RegistryClient } from '../registry/client.js';
import { MemoryRegistry, serveRoute } from '../registry/testing.js';
import type { RequestSpec } from '../registry/transport.js';
import { StepTimer } from '../util/step-timer.js';
import { DigestStore } from './digest-store.js';
import type { RemoteContext } from './remote-context.js';
import { resolveRunImage } from './resolve-image.js';

const reg = new MemoryRegistry();
const seen: string[] = [];
let server: { host: string; close: () => Promise<void> };
let client: RegistryClient;
let dir: string;
let ref: string;
const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);
const configDigest = sha256Of(config);
const layer = Buffer.from('layer bytes');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-resolve-'));
  reg.putBlob('app', config);
  const layerDigest = reg.putBlob('app', layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: layerDigest, size: layer.length }],
    }),
  );
  reg.putManifest('app', manifest, MediaType.ociManifest, 'v1');
  // The same image with the config embedded (as record-trace publishes it), and with wrong bytes embedded.
  const withData = (data: string) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length, data },
        layers: [{ mediaType: MediaType.ociLayerGzip, digest: layerDigest, size: layer.length }],
      }),
    );
  reg.putManifest('app', withData(config.toString('base64')), MediaType.ociManifest, 'embedded');
  const forged = Buffer.from(config.toString().replace('amd64', 'arm64'));
  reg.putManifest('app', withData(forged.toString('base64')), MediaType.ociManifest, 'forged');
  reg.putManifest('app', withData('not base64!'), MediaType.ociManifest, 'malformed');
  server = await serveRoute((req: RequestSpec) => {
    seen.push(`${req.method} ${new URL(req.url).pathname}`);
    return reg.route(req);
  });
  client = new RegistryClient({ credentials: undefined, maxAttempts: 1 });
  ref = `${server.host}/app:v1`;
});
afterEach(() => {
  seen.length = 0;
});
afterAll(async () => {
  await client.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const ctx = (): RemoteContext => ({ client, close: async () => {} });
const configGets = () => seen.filter((s) => s.endsWith(`/blobs/${configDigest}`)).length;

describe('resolveRunImage', () => {
  it('names the layers before it fetches the config, and laps both', async () => {
    const timer = new StepTimer();
    let gotLayers: string[] | undefined;
    let configsBefore = -1;
    const r = await resolveRunImage(ref, ctx(), {
      timer,
      onLayers: (img) => {
        gotLayers = img.layers.map((l) => l.digest);
        configsBefore = configGets();
      },
    });
    expect(gotLayers).toEqual([sha256Of(layer)]);
    expect(configsBefore).toBe(0);
    expect(configGets()).toBe(1);
    expect(r.config.architecture).toBe('amd64');
    expect(timer.steps.map((s) => s.step)).toEqual(['manifest', 'config']);
  });

  it('fetches a config once per digest store, and still looks the tag up every time', async () => {
    const configs = new DigestStore(join(dir, 'store'));
    await resolveRunImage(ref, ctx(), { configs });
    await expect.poll(() => configs.get(configDigest)).toEqual(config);
    seen.length = 0;
    const again = await resolveRunImage(ref, ctx(), { configs });
    expect(again.config).toEqual(JSON.parse(config.toString()));
    expect(seen).toEqual(['GET /v2/app/manifests/v1']);
  });

  it('fetches again when the kept file does not hash to its name', async () => {
    const configs = new DigestStore(join(dir, 'bad'));
    await configs.put(configDigest, config);
    const [name] = await readdir(join(dir, 'bad/sha256'));
    await writeFile(join(dir, 'bad/sha256', name!), Buffer.from('{"rootfs":{"diff_ids":[]},"tampered":true}'));
    expect(await configs.get(configDigest)).toBeUndefined();
    const r = await resolveRunImage(ref, ctx(), { configs });
    expect(r.config).not.toHaveProperty('tampered');
    expect(configGets()).toBe(1);
  });
});

describe('resolveRunImage with the config embedded in the manifest', () => {
  it('takes it from the manifest: no GET for it, and kept in the digest store', async () => {
    const configs = new DigestStore(join(dir, 'embedded'));
    const r = await resolveRunImage(`${server.host}/app:embedded`, ctx(), { configs });
    expect(r.config).toEqual(JSON.parse(config.toString()));
    expect(seen).toEqual(['GET /v2/app/manifests/embedded']);
    await expect.poll(() => configs.get(configDigest)).toEqual(config);
  });

  it('fetches it when the embedded bytes are not the ones the digest names, or not base64', async () => {
    for (const tag of ['forged', 'malformed']) {
      seen.length = 0;
      const r = await resolveRunImage(`${server.host}/app:${tag}`, ctx());
      expect(r.config.architecture).toBe('amd64');
      expect(configGets()).toBe(1);
    }
  });
});

describe('DigestStore', () => {
  it('keeps only what hashes to the digest it is given, and only sha256 names', async () => {
    const s = new DigestStore(join(dir, 'only'));
    await s.put(sha256Of(Buffer.from('other')), config);
    expect(await s.get(sha256Of(Buffer.from('other')))).toBeUndefined();
    await s.put('sha512:abc', config);
    expect(await s.get('sha512:abc')).toBeUndefined();
    await s.put(configDigest, config);
    expect(await s.get(configDigest)).toEqual(config);
  });
});
