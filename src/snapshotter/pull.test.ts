import { describe, expect, it } from 'vitest';
import { type Digest, MediaType } from '../oci/index.js';
import { diffIdsOfUncompressed } from './pull.js';

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
