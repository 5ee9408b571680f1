// Registry endpoints through a whole RegistryClient against the in-memory registry over loopback
// HTTP: a source resolves, reads configs and streams blobs with size checks; a target stores
// blobs and a tagged manifest, and mounts blobs only from the same registry.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Of } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { RegistryClient } from './client.js';
import { RegistrySource, RegistryTarget } from './image-endpoint.js';
import { parseReference } from './reference.js';
import { MemoryRegistry, serveRoute } from './testing.js';

const reg = new MemoryRegistry();
let server: { host: string; close: () => Promise<void> };
let client: RegistryClient;
let dir: string;
const LAYER = Buffer.from('layer bytes '.repeat(100));
const CONFIG = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);

beforeAll(async () => {
  server = await serveRoute(reg.route);
  client = new RegistryClient({ credentials: undefined, maxAttempts: 1 });
  dir = await mkdtemp(join(tmpdir(), 'dadi-endpoint-'));
});
afterAll(async () => {
  await client.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function source(spec: string): RegistrySource {
  return new RegistrySource(spec, parseReference(spec), client, false);
}
function target(spec: string): RegistryTarget {
  return new RegistryTarget(spec, parseReference(spec), client, false);
}

describe('registry endpoints', () => {
  it('a target stores blobs and a tagged manifest that a source resolves and reads back', async () => {
    const dst = target(`${server.host}/app:v1`);
    const file = join(dir, 'layer');
    await writeFile(file, LAYER);
    const layer = { digest: sha256Of(LAYER), size: LAYER.length };
    await expect(dst.putBlobFile(file, { ...layer, size: layer.size + 1 })).rejects.toThrow(/expected/);
    expect(await dst.statBlob(layer.digest)).toBeUndefined();
    await dst.putBlobFile(file, layer);
    expect(await dst.statBlob(layer.digest)).toBe(LAYER.length);
    const cfg = await dst.putBlob(CONFIG);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, ...cfg },
        layers: [{ mediaType: MediaType.ociLayer, ...layer }],
      }),
    );
    expect(await dst.putManifest(manifest, MediaType.ociManifest)).toBe(sha256Of(manifest));

    const src = source(`${server.host}/app:v1`);
    const r = await src.resolve();
    expect(r.digest).toBe(sha256Of(manifest));
    expect(r.bytes.equals(manifest)).toBe(true);
    expect((await src.getConfig(r.manifest.config)).bytes.equals(CONFIG)).toBe(true);
    const parts: Uint8Array[] = [];
    for await (const c of src.blobStream(r.manifest.layers[0]!)) parts.push(c);
    expect(Buffer.concat(parts).equals(LAYER)).toBe(true);
  });

  it('a source refuses a blob longer or shorter than its descriptor says', async () => {
    const digest = reg.putBlob('sizes', LAYER);
    const src = source(`${server.host}/sizes:any`);
    const drain = async (size: number) => {
      for await (const _ of src.blobStream({ mediaType: MediaType.ociLayer, digest, size })) {
      }
    };
    await expect(drain(LAYER.length - 1)).rejects.toThrow(/larger than its descriptor's/);
    await expect(drain(LAYER.length + 1)).rejects.toThrow(/its descriptor says/);
  });

  it('mounts a blob from another repository of the same registry only', async () => {
    const digest = reg.putBlob('base', LAYER);
    const desc = { mediaType: MediaType.ociLayer, digest, size: LAYER.length };
    const dst = target(`${server.host}/derived:v1`);
    expect(await dst.mountBlob(desc, source('other.registry:5000/base:v1'))).toBe(false);
    expect(await dst.statBlob(digest)).toBeUndefined();
    expect(await dst.mountBlob(desc, source(`${server.host}/base:v1`))).toBe(true);
    expect(await dst.statBlob(digest)).toBe(LAYER.length);
  });

  it('lists the platform images of an index, resolves one by digest, and stores manifests untagged', async () => {
    const cfg = reg.putBlob('multi', CONFIG);
    const image = (arch: string) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: MediaType.ociConfig, digest: cfg, size: CONFIG.length },
          layers: [],
          annotations: { arch },
        }),
      );
    const [amd, arm] = [image('amd64'), image('arm64')];
    const desc = (b: Buffer, architecture: string) => ({
      mediaType: MediaType.ociManifest,
      digest: reg.putManifest('multi', b, MediaType.ociManifest),
      size: b.length,
      platform: { os: 'linux', architecture },
    });
    const nested = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [desc(arm, 'arm64')] }),
    );
    const top = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [
          desc(amd, 'amd64'),
          {
            mediaType: MediaType.ociIndex,
            digest: reg.putManifest('multi', nested, MediaType.ociIndex),
            size: nested.length,
          },
        ],
      }),
    );
    reg.putManifest('multi', top, MediaType.ociIndex, 'all');
    const src = source(`${server.host}/multi:all`);
    const list = await src.platformImages();
    expect(list.map((d) => d.platform!.architecture)).toEqual(['amd64', 'arm64']);
    expect((await src.resolve({ digest: list[1]!.digest })).bytes.equals(arm)).toBe(true);
    expect(await source(`${server.host}/multi@${list[0]!.digest}`).platformImages()).toEqual([]);

    const dst = target(`${server.host}/multi:all`);
    await dst.putManifest(amd, MediaType.ociManifest, { untagged: true });
    expect((await src.platformImages()).length).toBe(2); // the tag still names the index
  });
});
