// Publishing: config then manifest into a real layout target (tag set only by the manifest),
// background layer uploads, each with its chunk digest list, that keep the first failure and name
// the layer, and a new layer file's digests, inline and with the chunks hashed on a worker.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRandom } from '../../test/seed.js';
import { DadiError } from '../errors.js';
import { closeCompressPool, compressPool, readyCompressPool } from '../format/zfile/compress-pool.js';
import { type Digest, sha256Of } from '../oci/digest.js';
import type { ImageTarget } from '../oci/image-source.js';
import { LayoutTarget, OciLayout } from '../oci/layout.js';
import type { ImageConfig } from '../oci/manifest.js';
import { MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import { computeChunkDigests } from '../p2p/chunk-digests.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { digestLayerFile, LayerUploads, publishImage } from './publish.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-publish-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CONFIG: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } };

describe('digestLayerFile', () => {
  // Empty, within one chunk, chunk and read-buffer (4 chunks) boundaries.
  const sizes = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 1, 4 * CHUNK_SIZE, 9 * CHUNK_SIZE + 12345];
  afterAll(closeCompressPool);

  for (const where of ['inline', 'on a compression worker']) {
    it(`gives the blob's sha256, size and chunk list as hashing it in memory does, ${where}`, async () => {
      if (where === 'inline') expect(readyCompressPool()).toBeUndefined();
      else await compressPool(1).whenReady();
      const random = testRandom(16);
      const all = Buffer.alloc(sizes.at(-1)!);
      for (let i = 0; i < all.length; i++) all[i] = Math.floor(random() * 256);
      for (const size of sizes) {
        const bytes = all.subarray(0, size);
        const f = join(dir, `layer-${size}`);
        await writeFile(f, bytes);
        const got = await digestLayerFile(f);
        const want = computeChunkDigests(bytes, sha256Of(bytes));
        expect(got.blob).toEqual(want.blob);
        expect(got.chunkSize).toBe(want.chunkSize);
        expect(Buffer.from(got.digests).equals(Buffer.from(want.digests))).toBe(true);
        expect(got.digests.length).toBe(32 * Math.ceil(size / CHUNK_SIZE));
        await rm(f);
      }
    });
  }
});

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
    const small: Buffer[] = [];
    const dst: ImageTarget = {
      name: 'reg/app:v1',
      statBlob: async () => undefined,
      putBlob: async (bytes) => {
        small.push(Buffer.from(bytes));
        return { digest: sha256Of(bytes), size: bytes.length };
      },
      putManifest: async () => sha256Of(Buffer.alloc(0)),
      putBlobFile: (path) =>
        new Promise<void>((ok, fail) => {
          pending.set(basename(path), { ok, fail });
        }),
      close: async () => {},
    };
    return { dst, pending, small };
  }
  /** A layer file named `s` holding `s`. */
  const layer = async (s: string): Promise<{ path: string; desc: { digest: Digest; size: number } }> => {
    const path = join(dir, s);
    await writeFile(path, s);
    return { path, desc: { digest: sha256Of(Buffer.from(s)), size: s.length } };
  };
  const tick = () => new Promise((r) => setImmediate(r));

  it('reports every upload done with its time and its chunk digest list', async () => {
    const { dst, pending, small } = gatedTarget();
    const done: string[] = [];
    const signalled: unknown[] = [];
    const uploads = new LayerUploads(dst, (e) => signalled.push(e));
    const a = await layer('a');
    const b = await layer('b');
    const lists = new Map<string, Digest>();
    uploads.add(a.path, a.desc, 'layer 1/2', (_, list) => {
      done.push('a');
      lists.set('a', list.digest);
    });
    uploads.add(b.path, b.desc, 'layer 2/2', () => done.push('b'));
    await tick();
    pending.get('b')!.ok();
    pending.get('a')!.ok();
    await uploads.done();
    expect(done.sort()).toEqual(['a', 'b']);
    // The list of blob 'a' went up as a small blob: one chunk, the sha256 of "a".
    const listA = small.find((x) => sha256Of(x) === lists.get('a'))!;
    expect(JSON.parse(listA.toString())).toMatchObject({
      blob: a.desc,
      chunks: [sha256Of('a').slice(7)],
    });
    expect(uploads.error).toBeUndefined();
    expect(signalled).toEqual([]);
  });

  it('keeps the first failure, names its layer, and signals it once per failure', async () => {
    const { dst, pending } = gatedTarget();
    const signalled: unknown[] = [];
    const uploads = new LayerUploads(dst, (e) => signalled.push(e));
    const a = await layer('a');
    const b = await layer('b');
    uploads.add(a.path, a.desc, 'layer 1/2', () => {});
    uploads.add(b.path, b.desc, 'layer 2/2', () => {});
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
