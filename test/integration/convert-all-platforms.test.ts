// `dadi convert --all-platforms` (issue #16): every platform of hello-world's multi-arch manifest
// list (and of its nested index) converts; the target's tag names an index listing one overlaybd
// manifest per source platform; each converted image holds that platform's /hello, byte-equal to
// the source layer's. A source that is no index is refused with a clear message, leaving no layout.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ext4 } from '../../src/ext4/index.js';
import { LayerStack } from '../../src/format/lsmt/index.js';
import { readTar } from '../../src/format/tar/index.js';
import { OciLayout } from '../../src/oci/layout.js';
import { formatPlatform } from '../../src/oci/platform.js';
import { runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { openLayerFile } from '../lsmt-helpers.js';

const HAVE = haveFixtures('convert --all-platforms');
const SRC = fixture('oci/hello-world');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-all-platforms-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** /hello of a source image (its one gzip layer) by platform. */
async function sourceHello(layout: OciLayout, digest: string): Promise<Buffer> {
  const img = await layout.resolve({ digest: digest as never });
  const { gunzipSync } = await import('node:zlib');
  const tar = gunzipSync(await layout.readBlob(img.manifest.layers[0]!));
  for await (const e of readTar(
    (async function* () {
      yield tar;
    })(),
    'layer',
  )) {
    const parts: Uint8Array[] = [];
    for await (const c of e.data()) parts.push(c);
    if (Buffer.from(e.path).toString() === 'hello') return Buffer.concat(parts);
  }
  throw new Error('no /hello');
}

describe.runIf(HAVE)('convert --all-platforms', () => {
  it('converts each platform of a manifest list and of a nested index into one index', {
    timeout: 120_000,
  }, async () => {
    const src = await OciLayout.open(SRC);
    for (const [tag, expected] of [
      ['multi-arch', 9],
      ['nested-index', 3],
    ] as const) {
      const out = join(dir, tag);
      const r = await runDadi([
        'convert',
        '--all-platforms',
        '--oci',
        '--json',
        '--workdir',
        join(dir, 'work'),
        `oci:${SRC}:${tag}`,
        `oci:${out}:obd`,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout);
      const want = await src.platformImages({ tag });
      expect(want).toHaveLength(expected);

      const layout = await OciLayout.open(out);
      const index = await layout.readIndex();
      const top = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === 'obd')!;
      expect(top.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(top.digest).toBe(result.index.digest);
      const converted = JSON.parse((await layout.readBlob(top)).toString());
      expect(converted.manifests.map((d: { platform: never }) => formatPlatform(d.platform))).toEqual(
        want.map((d) => formatPlatform(d.platform!)),
      );
      for (const [i, d] of converted.manifests.entries()) {
        const img = await layout.resolve({ digest: d.digest });
        expect(img.manifest.layers[0]!.annotations?.['containerd.io/snapshot/overlaybd/blob-digest']).toBeDefined();
        const stack = LayerStack.fromLayers([await openLayerFile(layout.blobPath(img.manifest.layers[0]!.digest))]);
        try {
          const fs = await Ext4.open(stack);
          const got = Buffer.concat(await collect(fs.readFile('/hello')));
          expect(got.equals(await sourceHello(src, want[i]!.digest)), formatPlatform(d.platform)).toBe(true);
        } finally {
          await stack.close();
        }
      }
    }
  });

  it('refuses a source that is a single image and leaves no layout', async () => {
    const out = join(dir, 'single');
    const r = await runDadi([
      'convert',
      '--all-platforms',
      '--workdir',
      join(dir, 'work'),
      `oci:${SRC}:amd64`,
      `oci:${out}:obd`,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^dadi: oci:.*:amd64: not a multi-platform index; convert it without --all-platforms/m);
    expect(existsSync(out)).toBe(false);
    const both = await runDadi([
      'convert',
      '--all-platforms',
      '--platform',
      'linux/amd64',
      `oci:${SRC}:multi-arch`,
      `oci:${out}:obd`,
    ]);
    expect(both.stderr).toMatch(/--all-platforms and --platform exclude each other/);
  });
});

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}
