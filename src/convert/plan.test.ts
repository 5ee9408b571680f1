// Planning a conversion against an in-memory source: every refusal happens before any layer work
// and names the image (and layer), and layers recorded with the same settings are found for reuse.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { DADI_LAYER_OUTPUT } from '../image/layer-output.js';
import { type Digest, sha256Of } from '../oci/digest.js';
import type { ImageSource, ResolvedManifest } from '../oci/image-source.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/manifest.js';
import { MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import { parsePlatform } from '../oci/platform.js';
import { chainIds } from './manifest.js';
import { planConversion } from './plan.js';
import { LayerRecords } from './record.js';

/** The layer output settings' key as the plan computes it (`obd1-zstd-4k`). */
const SETTINGS = `obd1-${DADI_LAYER_OUTPUT.zfile.algorithm}-${DADI_LAYER_OUTPUT.zfile.blockSize / 1024}k`;

const MiB = 1 << 20;
const diff = (i: number): Digest => sha256Of(Buffer.from(`diff ${i}`));
const layer = (i: number, mediaType: string = MediaType.ociLayerGzip): Descriptor => ({
  mediaType,
  digest: sha256Of(Buffer.from(`layer ${i}`)),
  size: 100 + i,
});

/** A source holding one image; counts resolve() calls. */
function memorySource(layers: Descriptor[], diffIds: Digest[], configType: string = MediaType.ociConfig) {
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } };
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: configType, digest: sha256Of(configBytes), size: configBytes.length },
    layers,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const resolved: ResolvedManifest = {
    digest: sha256Of(bytes),
    mediaType: MediaType.ociManifest,
    manifest,
    bytes,
    indexes: [],
  };
  const src = {
    name: 'mem/app:v1',
    resolves: 0,
    async resolve() {
      src.resolves++;
      return resolved;
    },
    async getConfig() {
      return { config, bytes: configBytes };
    },
    blobStream(): AsyncIterable<Uint8Array> {
      throw new Error('planning reads no blobs');
    },
    async close() {},
  } satisfies ImageSource & { resolves: number };
  return src;
}

let dir: string;
let records: LayerRecords;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-plan-'));
  records = new LayerRecords(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<DadiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DadiError);
  return e as DadiError;
}

describe('planConversion', () => {
  it('refuses a bad vsize before touching the source', async () => {
    const src = memorySource([layer(0)], [diff(0)]);
    for (const vsize of [32 * MiB, 64 * MiB + 512, Number.NaN]) {
      const e = await refusal(planConversion(src, records, { vsize }));
      expect(e.code).toBe('EINVAL');
      expect(e.message).toMatch(/must be a multiple of 4096 of at least 64 MiB/);
    }
    expect(src.resolves).toBe(0);
  });

  it('refuses images it cannot convert, naming the image and the layer', async () => {
    const cases: Array<[ReturnType<typeof memorySource>, string, RegExp]> = [
      [
        memorySource([layer(0), layer(1)], [diff(0)]),
        'EFORMAT',
        /mem\/app:v1: the config lists 1 diff_ids for 2 layers/,
      ],
      [memorySource([], []), 'EFORMAT', /mem\/app:v1: the image has no layers/],
      [
        memorySource([layer(0)], [diff(0)], 'application/x-other'),
        'EUNSUPPORTED',
        /config media type application\/x-other/,
      ],
      [
        memorySource(
          [layer(0), { ...layer(1), annotations: { [OverlaybdAnnotation.blobDigest]: diff(1) } }],
          [diff(0), diff(1)],
        ),
        'EINVAL',
        /mem\/app:v1: layer 2\/2 \(sha256:[0-9a-f]{64}\): already an overlaybd layer/,
      ],
      [
        memorySource([layer(0, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip')], [diff(0)]),
        'EUNSUPPORTED',
        /layer 1\/1 .* cannot be converted/,
      ],
      [
        memorySource(
          Array.from({ length: 256 }, (_, i) => layer(i)),
          Array.from({ length: 256 }, (_, i) => diff(i)),
        ),
        'EUNSUPPORTED',
        /256 layers \(an overlaybd stack holds at most 255\)/,
      ],
    ];
    for (const [src, code, message] of cases) {
      const e = await refusal(planConversion(src, records));
      expect(e.code).toBe(code);
      expect(e.message).toMatch(message);
    }
  });

  it('finds layers recorded with the same settings, unless reuse is off', async () => {
    const diffs = [diff(0), diff(1)];
    const chains = chainIds(diffs);
    const blob = join(dir, 'committed');
    await writeFile(blob, 'a converted layer');
    const vsize = 64 * MiB;
    await records.save(
      {
        chainId: chains[0]!,
        settings: `${SETTINGS}-${vsize}`,
        digest: sha256Of(Buffer.from('a converted layer')),
        size: 17,
        uuid: 'u',
      },
      blob,
    );
    const src = memorySource([layer(0), layer(1)], diffs);
    const plan = await planConversion(src, records, { vsize, platform: parsePlatform('linux/amd64') });
    expect(plan.settings).toBe(`${SETTINGS}-${vsize}`);
    expect(plan.chainIds).toEqual(chains);
    expect(plan.reused.map((r) => r?.size)).toEqual([17, undefined]);
    // Another vsize is another setting: nothing to reuse.
    expect((await planConversion(src, records, { vsize: 2 * vsize })).reused).toEqual([undefined, undefined]);
    expect((await planConversion(src, records, { vsize, reuse: false })).reused).toEqual([undefined, undefined]);
  });
});
