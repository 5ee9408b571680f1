// Publishing: config then manifest into a real layout target (tag set only by the manifest), and
// background layer uploads that keep the first failure and name the layer.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { type Digest, sha256Of } from '../oci/digest.js';
import type { ImageTarget } from '../oci/image-source.js';
import { LayoutTarget, OciLayout } from '../oci/layout.js';
import type { ImageConfig } from '../oci/manifest.js';
import { MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import { LayerUploads, publishImage } from './publish.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-publish-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CONFIG: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } };

describe('publishImage', () => {
  for (const oci of [false, true]) {
    it(`stores the config and then the tagged manifest (${oci ? 'OCI' : 'Docker'} media types)`, async () => {
      const out = join(dir, `img-${oci}`);
      const blobs = ['one', 'two'].map((s) => Buffer.from(`layer ${s}`));
      const layers = blobs.map((b) => ({ digest: sha256Of(b), size: b.length }));
      const dst = await LayoutTarget.open(`oci:${out}:v1`);
      try {
        for (const [i, b] of blobs.entries()) {
          const f = join(dir, `blob-${oci}-${i}`);
          await writeFile(f, b);
          await dst.putBlobFile(f, layers[i]!);
        }
        const r = await publishImage(dst, CONFIG, layers, { oci, annotations: { note: 'kept' } });
        const layout = await OciLayout.open(out);
        const img = await layout.resolve({ tag: 'v1' });
        expect(img.digest).toBe(r.manifest.digest);
        expect(img.bytes.length).toBe(r.manifest.size);
        expect(r.manifest.mediaType).toBe(oci ? MediaType.ociManifest : MediaType.dockerManifest);
        expect(img.manifest.config).toMatchObject({ digest: r.config.digest, size: r.config.size });
        expect(img.manifest.annotations).toEqual({ note: 'kept' });
        expect(img.manifest.layers.map((l) => [l.digest, l.annotations?.[OverlaybdAnnotation.blobDigest]])).toEqual(
          layers.map((l) => [l.digest, l.digest]),
        );
        const config = JSON.parse((await layout.readBlob(img.manifest.config)).toString());
        expect(config.rootfs.diff_ids).toEqual(layers.map((l) => l.digest));
      } finally {
        await dst.close();
      }
    });
  }
});

describe('LayerUploads', () => {
  /** A target whose uploads finish (or fail) when the test says. */
  function gatedTarget() {
    const pending = new Map<string, { ok: () => void; fail: (e: Error) => void }>();
    const dst: ImageTarget = {
      name: 'reg/app:v1',
      statBlob: async () => undefined,
      putBlob: async () => ({ digest: sha256Of(Buffer.alloc(0)), size: 0 }),
      putManifest: async () => sha256Of(Buffer.alloc(0)),
      putBlobFile: (path) =>
        new Promise<void>((ok, fail) => {
          pending.set(path, { ok, fail });
        }),
      close: async () => {},
    };
    return { dst, pending };
  }
  const desc = (s: string): { digest: Digest; size: number } => ({ digest: sha256Of(Buffer.from(s)), size: 1 });
  const tick = () => new Promise((r) => setImmediate(r));

  it('reports every upload done with its time', async () => {
    const { dst, pending } = gatedTarget();
    const done: string[] = [];
    const signalled: unknown[] = [];
    const uploads = new LayerUploads(dst, (e) => signalled.push(e));
    uploads.add('a', desc('a'), 'layer 1/2', () => done.push('a'));
    uploads.add('b', desc('b'), 'layer 2/2', () => done.push('b'));
    await tick();
    pending.get('b')!.ok();
    pending.get('a')!.ok();
    await uploads.done();
    expect(done.sort()).toEqual(['a', 'b']);
    expect(uploads.error).toBeUndefined();
    expect(signalled).toEqual([]);
  });

  it('keeps the first failure, names its layer, and signals it once per failure', async () => {
    const { dst, pending } = gatedTarget();
    const signalled: unknown[] = [];
    const uploads = new LayerUploads(dst, (e) => signalled.push(e));
    uploads.add('a', desc('a'), 'layer 1/2', () => {});
    uploads.add('b', desc('b'), 'layer 2/2', () => {});
    await tick();
    pending.get('b')!.fail(new DadiError('EIO', 'connection reset'));
    await tick();
    pending.get('a')!.fail(new DadiError('EIO', 'later failure'));
    await uploads.settled();
    expect(signalled).toHaveLength(2);
    expect(uploads.error).toBeInstanceOf(DadiError);
    expect((uploads.error as DadiError).message).toBe('reg/app:v1: upload of layer 2/2: connection reset');
    await expect(uploads.done()).rejects.toThrow(/upload of layer/);
  });
});
