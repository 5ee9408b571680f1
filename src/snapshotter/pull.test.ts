import { describe, expect, it } from 'vitest';
import { type Digest, MediaType } from '../oci/index.js';
import { diffIdsOfUncompressed, imageLaunchFiles } from './pull.js';

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
