import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../test/fixtures.js';
import { sha256Of } from './digest.js';
import { LayoutTarget, OciLayout, parseLayoutSpec } from './layout.js';
import { MediaType } from './media-types.js';
import { parsePlatform } from './platform.js';

const AMD64_MANIFEST = 'sha256:7e9b6e7ba2842c91cf49f3e214d04a7a496f8214356f41d81a6e6dcad11f11e3';

describe('oci: layout specs', () => {
  it('parses DIR, DIR:TAG and DIR@DIGEST', () => {
    expect(parseLayoutSpec('oci:/a/b')).toEqual({ dir: '/a/b' });
    expect(parseLayoutSpec('oci:/a/b:v1')).toEqual({ dir: '/a/b', tag: 'v1' });
    expect(parseLayoutSpec('oci:/a:x/b')).toEqual({ dir: '/a:x/b' });
    expect(parseLayoutSpec('oci:rel:t')).toEqual({ dir: resolve('rel'), tag: 't' });
    expect(parseLayoutSpec(`oci:/a@${AMD64_MANIFEST}`)).toEqual({ dir: '/a', digest: AMD64_MANIFEST });
    expect(() => parseLayoutSpec('oci:')).toThrow(/no directory/);
    expect(() => parseLayoutSpec('oci:/a:')).toThrow(/empty tag/);
  });

  it('refuses what could be read two ways, saying how to write it', () => {
    expect(() => parseLayoutSpec('oci:dir:a:b')).toThrow(/ambiguous: more than one ':'.*oci:DIR:TAG/);
    expect(() => parseLayoutSpec('oci:/x/dir:a b')).toThrow(/"a b" is not a valid tag/);
    expect(() => parseLayoutSpec('oci:/x/dir:.v1')).toThrow(/not a valid tag/);
  });

  it('refuses NAME:TAG when a folder named NAME:TAG exists', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-spec-'));
    try {
      await mkdir(join(dir, 'img:v1'));
      expect(() => parseLayoutSpec(`oci:${dir}/img:v1`)).toThrow(/ambiguous: the folder .*img:v1" exists/);
      expect(parseLayoutSpec(`oci:${dir}/img:v2`)).toEqual({ dir: join(dir, 'img'), tag: 'v2' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(haveFixtures('OCI layout reader'))('the hello-world layout', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-layout-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves amd64, multi-arch and nested-index to the amd64 manifest', async () => {
    const layout = await OciLayout.open(fixture('oci/hello-world'));
    const amd64 = parsePlatform('linux/amd64');
    for (const tag of ['amd64', 'multi-arch', 'nested-index']) {
      const r = await layout.resolve({ tag, platform: amd64 });
      expect(r.digest).toBe(AMD64_MANIFEST);
      expect(r.mediaType).toBe(MediaType.dockerManifest);
    }
    expect((await layout.resolve({ tag: 'nested-index', platform: amd64 })).indexes).toHaveLength(2);
    const arm = await layout.resolve({ tag: 'multi-arch', platform: parsePlatform('linux/arm/v7') });
    expect(arm.digest).toBe('sha256:a0a386314d69d1514d7aa63d12532b284bf37bba15ed7b4fc1a3f86605f86c63');
    expect((await layout.resolve({ digest: AMD64_MANIFEST })).digest).toBe(AMD64_MANIFEST);
    await expect(layout.resolve({ tag: 'nope' })).rejects.toThrow(/no entry named "nope".*amd64/);
  });

  it('checks digests on read', async () => {
    const copy = join(dir, 'copy');
    await cp(fixture('oci/hello-world'), copy, { recursive: true });
    const layout = await OciLayout.open(copy);
    const cfg = 'sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d';
    const bytes = await readFile(layout.blobPath(cfg));
    bytes[5] ^= 1;
    await writeFile(layout.blobPath(cfg), bytes);
    await expect(layout.readBlob({ digest: cfg, size: bytes.length })).rejects.toMatchObject({ code: 'ECORRUPT' });
    const drain = async () => {
      for await (const _ of layout.blobStream({ digest: cfg })) void _;
    };
    await expect(drain()).rejects.toThrow(/hashes to/);
  });

  it('writes blobs and tags (same name replaced)', async () => {
    const t = await LayoutTarget.open(`oci:${join(dir, 'new')}:v1`);
    const a = await t.putManifest(Buffer.from('{"a":1}'), MediaType.ociManifest);
    const t2 = await LayoutTarget.open(`oci:${join(dir, 'new')}:v1`);
    const b = await t2.putManifest(Buffer.from('{"b":2}'), MediaType.ociManifest);
    expect(a).toBe(sha256Of('{"a":1}'));
    const index = JSON.parse(await readFile(join(dir, 'new', 'index.json'), 'utf8'));
    expect(index.manifests).toEqual([
      {
        mediaType: MediaType.ociManifest,
        digest: b,
        size: 7,
        annotations: { 'org.opencontainers.image.ref.name': 'v1' },
      },
    ]);
    expect(await (await OciLayout.open(join(dir, 'new'))).statBlob(a)).toBe(7);
  });
});
