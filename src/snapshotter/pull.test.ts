import { describe, expect, it } from 'vitest';
import { type Digest, MediaType, OverlaybdAnnotation } from '../oci/index.js';
import type { RegistryClient, ResolvedImage } from '../registry/index.js';
import { diffIdsOfUncompressed, imageLaunchFiles, pullHeadStart } from './pull.js';
import type { RemoteLayer } from './store.js';

const digest = (c: string): Digest => `sha256:${c.repeat(64)}`;

describe('diffIdsOfUncompressed', () => {
  it('an uncompressed layer (native DADI, OCI or Docker tar) has its digest as diff_id', () => {
    const layers = [
      { mediaType: MediaType.ociLayer, digest: digest('a') },
      { mediaType: MediaType.dockerLayer, digest: digest('b') },
    ];
    expect(diffIdsOfUncompressed(layers)).toEqual([digest('a'), digest('b')]);
  });

  it('one compressed layer (TurboOCI keeps the gzip layer) leaves the diff_ids to the config', () => {
    const layers = [
      { mediaType: MediaType.ociLayer, digest: digest('a') },
      { mediaType: MediaType.ociLayerGzip, digest: digest('b') },
    ];
    expect(diffIdsOfUncompressed(layers)).toBeUndefined();
    expect(diffIdsOfUncompressed([{ mediaType: MediaType.ociLayerZstd, digest: digest('c') }])).toBeUndefined();
  });
});

describe('imageLaunchFiles', () => {
  it("names containerd's user lookup, then glibc's start files of the config's architecture and the locale of its Env", () => {
    const files = imageLaunchFiles({
      architecture: 'amd64',
      config: { Env: ['PATH=/usr/bin', 'LANG=C.UTF-8', 42] },
      rootfs: { type: 'layers', diff_ids: [] },
    }).files!;
    expect(files.slice(0, 4)).toEqual(['/etc/passwd', '/etc/group', '/lib64/ld-linux-x86-64.so.2', '/etc/ld.so.cache']);
    expect(files).toContain('/usr/lib/locale/C.utf8/LC_CTYPE');
    expect(files.length).toBeLessThanOrEqual(64); // the daemon's bound on a request's launch files
  });

  it("a config without Env or of an unknown architecture names only containerd's files and /etc/localtime", () => {
    expect(imageLaunchFiles({ rootfs: { type: 'layers', diff_ids: [] } })).toEqual({
      files: ['/etc/passwd', '/etc/group', '/etc/localtime'],
      readThrough: true,
    });
  });
});

describe('pullHeadStart', () => {
  const dadiLayer = (c: string, extra: Record<string, string> = {}) => ({
    mediaType: MediaType.ociLayer,
    digest: digest(c),
    size: 100,
    annotations: {
      [OverlaybdAnnotation.blobDigest]: digest(c),
      [OverlaybdAnnotation.blobSize]: '100',
      ...extra,
    },
  });
  /** A registry client answering the manifest `layers` and a config, recording what was fetched. */
  const fakeClient = (layers: object[], fail?: Error) => {
    const fetched: string[] = [];
    const client = {
      resolveImage: async () => {
        if (fail) throw fail;
        return {
          manifest: { config: { digest: digest('c') }, layers },
          digest: digest('m'),
        } as unknown as ResolvedImage;
      },
      fetchBlob: async (_r: unknown, d: string) => {
        fetched.push(d);
        return Buffer.from('{}');
      },
    } as unknown as RegistryClient;
    return { client, fetched };
  };

  it("resolves, fetches the config and names the image's DADI layers (the acceleration layer left out)", async () => {
    const { client, fetched } = fakeClient([
      dadiLayer('a'),
      dadiLayer('b'),
      dadiLayer('e', { [OverlaybdAnnotation.accelerationLayer]: 'yes' }),
    ]);
    const told: RemoteLayer[][] = [];
    const ahead = pullHeadStart('reg:5000/app', client, (l) => told.push(l));
    expect((await ahead.image).digest).toBe(digest('m'));
    expect((await ahead.config).toString()).toBe('{}');
    expect(fetched).toEqual([digest('c')]);
    expect(told).toEqual([
      [
        { registry: 'reg:5000', repository: 'app', digest: digest('a'), size: 100 },
        { registry: 'reg:5000', repository: 'app', digest: digest('b'), size: 100 },
      ],
    ]);
  });

  it('names no layers of an image that is not all DADI layers, and keeps a failed resolve for the pull', async () => {
    const plain = fakeClient([dadiLayer('a'), { mediaType: MediaType.ociLayerGzip, digest: digest('g'), size: 5 }]);
    const told: unknown[] = [];
    await pullHeadStart('reg:5000/app:v1', plain.client, (l) => told.push(l)).config;
    expect(told).toEqual([]);
    const failing = fakeClient([], new Error('manifest unknown'));
    const ahead = pullHeadStart('reg:5000/app:v1', failing.client, (l) => told.push(l));
    await new Promise((r) => setTimeout(r, 5)); // no unhandled rejection meanwhile
    await expect(ahead.image).rejects.toThrow('manifest unknown');
    await expect(ahead.config).rejects.toThrow('manifest unknown');
    expect(failing.fetched).toEqual([]);
  });
});
