// The manifest role against a fake transport: put/get by tag and digest with digest checks,
// HEAD with and without a digest header, platform selection through nested indexes, tag paging.

import { describe, expect, it } from 'vitest';
import { sha256Of } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { parsePlatform } from '../oci/platform.js';
import { Manifests } from './manifests.js';
import { FakeHttp, MemoryRegistry } from './testing.js';

const HOST = 'reg.test';
const repo = { registry: HOST, repository: 'app' };

function manifestBytes(layer: string): Buffer {
  const cfg = Buffer.from('{}');
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: sha256Of(cfg), size: cfg.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: sha256Of(Buffer.from(layer)), size: layer.length }],
    }),
  );
}

function indexBytes(entries: Array<{ bytes: Buffer; mediaType: string; platform: string }>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: entries.map((e) => {
        const [os, architecture] = e.platform.split('/');
        return {
          mediaType: e.mediaType,
          digest: sha256Of(e.bytes),
          size: e.bytes.length,
          platform: { os, architecture },
        };
      }),
    }),
  );
}

function setup() {
  const reg = new MemoryRegistry();
  const http = new FakeHttp(reg.route);
  return { reg, http, manifests: new Manifests(http) };
}

describe('Manifests', () => {
  it('puts under a tag and gets by tag and by digest, bytes and digest intact', async () => {
    const { http, manifests } = setup();
    const bytes = manifestBytes('l1');
    const digest = await manifests.put({ ...repo, tag: 'v1' }, bytes, MediaType.ociManifest);
    expect(digest).toBe(sha256Of(bytes));
    for (const ref of [
      { ...repo, tag: 'v1' },
      { ...repo, digest },
    ]) {
      const m = await manifests.get(ref);
      expect(m.digest).toBe(digest);
      expect(m.bytes.equals(bytes)).toBe(true);
      expect(m.mediaType).toBe(MediaType.ociManifest);
      expect(m.parsed.kind).toBe('manifest');
    }
    expect(http.log()).toEqual([
      'PUT /v2/app/manifests/v1',
      'GET /v2/app/manifests/v1',
      `GET /v2/app/manifests/${digest}`,
    ]);
    expect(http.requests[0]!.auth?.scopes).toEqual(['repository:app:pull,push']);
    expect(http.requests[1]!.auth?.scopes).toEqual(['repository:app:pull']);
  });

  it('refuses bytes that do not hash to the digest asked for, or that the registry names differently', async () => {
    const { reg, http, manifests } = setup();
    const good = manifestBytes('l1');
    const digest = reg.putManifest('app', good, MediaType.ociManifest, 'v1');
    const other = manifestBytes('l2');
    http.route = () => ({ status: 200, headers: { 'content-type': MediaType.ociManifest }, body: other });
    await expect(manifests.get({ ...repo, digest })).rejects.toMatchObject({ code: 'ECORRUPT' });
    http.route = () => ({
      status: 200,
      headers: { 'content-type': MediaType.ociManifest, 'docker-content-digest': digest },
      body: other,
    });
    await expect(manifests.get({ ...repo, tag: 'v1' })).rejects.toThrow(/the registry says/);
    await expect(manifests.put({ ...repo, digest }, other, MediaType.ociManifest)).rejects.toThrow(
      /not the digest given/,
    );
  });

  it('HEAD answers from the headers, and falls back to a GET when the digest header is missing', async () => {
    const { reg, http, manifests } = setup();
    const bytes = manifestBytes('l1');
    const digest = reg.putManifest('app', bytes, MediaType.ociManifest, 'v1');
    expect(await manifests.head({ ...repo, tag: 'v1' })).toEqual({
      digest,
      size: bytes.length,
      mediaType: MediaType.ociManifest,
    });
    expect(await manifests.head({ ...repo, tag: 'absent' })).toBeUndefined();
    expect(http.log()).toEqual(['HEAD /v2/app/manifests/v1', 'HEAD /v2/app/manifests/absent']);
    http.route = async (req) => {
      const r = await reg.route(req);
      delete r.headers?.['docker-content-digest'];
      return r;
    };
    expect((await manifests.head({ ...repo, tag: 'v1' }))?.digest).toBe(digest);
    expect(http.log().slice(2)).toEqual(['HEAD /v2/app/manifests/v1', 'GET /v2/app/manifests/v1']);
  });

  it('resolves nested indexes to the platform asked for, else the configured one', async () => {
    const { reg, http } = setup();
    const amd = manifestBytes('amd64');
    const arm = manifestBytes('arm64');
    reg.putManifest('app', amd, MediaType.ociManifest);
    reg.putManifest('app', arm, MediaType.ociManifest);
    const inner = indexBytes([{ bytes: arm, mediaType: MediaType.ociManifest, platform: 'linux/arm64' }]);
    reg.putManifest('app', inner, MediaType.ociIndex);
    const outer = indexBytes([
      { bytes: amd, mediaType: MediaType.ociManifest, platform: 'linux/amd64' },
      { bytes: inner, mediaType: MediaType.ociIndex, platform: 'linux/arm64' },
    ]);
    const outerDigest = reg.putManifest('app', outer, MediaType.ociIndex, 'multi');
    const manifests = new Manifests(http, { platform: parsePlatform('linux/amd64') });
    const a = await manifests.resolveImage({ ...repo, tag: 'multi' });
    expect(a.digest).toBe(sha256Of(amd));
    expect(a.indexes.map((i) => i.digest)).toEqual([outerDigest]);
    const b = await manifests.resolveImage({ ...repo, tag: 'multi' }, { platform: parsePlatform('linux/arm64') });
    expect(b.digest).toBe(sha256Of(arm));
    expect(b.indexes.map((i) => i.digest)).toEqual([outerDigest, sha256Of(inner)]);
    expect(b.manifest.layers[0]!.size).toBe('arm64'.length);
    await expect(
      manifests.resolveImage({ ...repo, tag: 'multi' }, { platform: parsePlatform('linux/s390x') }),
    ).rejects.toThrow(/no image for platform linux\/s390x \(available: linux\/amd64, linux\/arm64\)/);
  });

  it('refuses an index entry whose size disagrees with the manifest', async () => {
    const { reg, manifests } = setup();
    const amd = manifestBytes('amd64');
    reg.putManifest('app', amd, MediaType.ociManifest);
    const index = JSON.parse(
      indexBytes([{ bytes: amd, mediaType: MediaType.ociManifest, platform: 'linux/amd64' }]).toString(),
    );
    index.manifests[0].size += 1;
    reg.putManifest('app', Buffer.from(JSON.stringify(index)), MediaType.ociIndex, 'bad');
    await expect(
      manifests.resolveImage({ ...repo, tag: 'bad' }, { platform: parsePlatform('linux/amd64') }),
    ).rejects.toMatchObject({ code: 'ECORRUPT' });
  });

  it('lists tags across pages and names a missing repository', async () => {
    const { reg, http, manifests } = setup();
    const tags = Array.from({ length: 7 }, (_, i) => `t${i}`);
    for (const t of tags) reg.putManifest('app', manifestBytes(t), MediaType.ociManifest, t);
    reg.tagPageSize = 3;
    expect(await manifests.listTags(repo)).toEqual(tags);
    expect(http.log().filter((l) => l.endsWith('/tags/list'))).toHaveLength(3);
    await expect(manifests.listTags({ registry: HOST, repository: 'nope' })).rejects.toThrow(
      /reg\.test\/nope: repository not found/,
    );
  });
});
