// `convert` between OCI layouts: the real hello-world layout (tags amd64, multi-arch,
// nested-index → amd64), determinism and the layer record, a multi-layer image with whiteouts
// and an opaque dir built with GNU tar (tree and e2fsck checked), and hostile input.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/index.js';
import { DadiError } from '../../src/errors.js';
import { exportDisk } from '../../src/image/raw-disk.js';
import { LayoutSource, OciLayout } from '../../src/oci/layout.js';
import type { Descriptor } from '../../src/oci/manifest.js';
import { MediaType, OverlaybdAnnotation } from '../../src/oci/media-types.js';
import { parsePlatform } from '../../src/oci/platform.js';
import { ChunkDigestsAnnotation } from '../../src/p2p/chunk-digests.js';
import { isTempName } from '../../src/util/atomic-output.js';
import { describeTree, e2fsck, type TreeEntry } from '../ext4-tools.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { describeExt4, listedChunkDigests, openConverted, readAll, writeImageLayout } from './convert-helpers.js';

const amd64 = parsePlatform('linux/amd64');
const hello = fixture('oci/hello-world');
let dir: string;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe' });
const TAR = 'tar --numeric-owner --xattrs --xattrs-include="*"';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-convert-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The layout at `out` holds `layer`'s chunk digest list, listing each 1 MiB chunk's sha256. */
async function expectChunkDigests(out: string, layer: Descriptor): Promise<void> {
  const src = await LayoutSource.open(`oci:${out}`);
  try {
    const blob = readFileSync(join(out, 'blobs/sha256', layer.digest.slice(7)));
    const got = await listedChunkDigests(src, layer, blob);
    expect(got.chunkSize).toBe(1 << 20);
    expect(got.entries).toBe(Math.ceil(blob.length / (1 << 20)));
    expect(got.listed).toEqual(got.wanted);
  } finally {
    await src.close();
  }
}

async function fsckClean(out: string, tag: string): Promise<void> {
  const img = await openConverted(out, tag);
  const disk = join(dir, `${tag}.img`);
  try {
    await exportDisk(img.stack, disk);
  } finally {
    await img.close();
  }
  const r = await e2fsck(disk);
  await rm(disk, { force: true });
  expect(r.problems).toEqual([]);
  expect(r.code).toBe(0);
}

describe.runIf(haveFixtures('convert hello-world'))('convert the hello-world layout', () => {
  let helloBytes: Buffer;
  beforeAll(() => {
    const layer = join(hello, 'blobs/sha256/719385e32844401d57ecfd3eacab360bf551a1491c05b85806ed8f1b08d792f6');
    helloBytes = execFileSync('tar', ['-xzOf', layer, 'hello']);
  });

  for (const tag of ['amd64', 'multi-arch', 'nested-index']) {
    it(`oci:hello-world:${tag} → amd64, /hello intact, manifest as the reference`, async () => {
      const out = join(dir, `hello-${tag}`);
      const r = await convertImage(`oci:${hello}:${tag}`, `oci:${out}:hello`, {
        platform: amd64,
        workDir: join(dir, 'work'),
      });
      expect(r.sourceManifest).toBe('sha256:7e9b6e7ba2842c91cf49f3e214d04a7a496f8214356f41d81a6e6dcad11f11e3');
      expect(r.platform).toBe('linux/amd64');
      const img = await openConverted(out, 'hello');
      try {
        expect(img.manifest.mediaType).toBe(MediaType.dockerManifest);
        expect(img.manifest.config.mediaType).toBe(MediaType.dockerConfig);
        const l = img.manifest.layers[0]!;
        expect(l.mediaType).toBe(MediaType.dockerLayer);
        // The reference's annotations, then the pointer to the chunk digest list (dadi's own keys).
        expect(l.annotations).toEqual({
          [OverlaybdAnnotation.blobDigest]: l.digest,
          [OverlaybdAnnotation.blobSize]: String(l.size),
          [OverlaybdAnnotation.version]: '0.1.0',
          [ChunkDigestsAnnotation.digest]: r.layers[0]!.chunkDigests!.digest,
          [ChunkDigestsAnnotation.size]: String(r.layers[0]!.chunkDigests!.size),
        });
        await expectChunkDigests(out, l);
        expect(img.stack.layers[0]!.uuid.toLowerCase()).toBe('01bb4fce-3eb1-b56b-05ad-f99504dafd31');
        expect((await readAll(img.fs, '/hello')).equals(helloBytes)).toBe(true);
        expect((await img.fs.stat('/hello')).mode & 0o777).toBe(0o775);
        // Config: diff_ids replaced, history kept, Docker-only fields dropped.
        const layout = await OciLayout.open(out);
        const cfg = JSON.parse((await layout.readBlob(img.manifest.config)).toString());
        expect(cfg.rootfs.diff_ids).toEqual([l.digest]);
        expect(cfg.history).toHaveLength(2);
        expect(cfg.container_config).toBeUndefined();
        expect(cfg.config).toEqual({
          Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
          Cmd: ['/hello'],
        });
      } finally {
        await img.close();
      }
      if (tag === 'amd64') await fsckClean(out, 'hello');
    });
  }

  it('--oci media types; converting twice gives the same digests; the record skips finished layers', async () => {
    const a = await convertImage(`oci:${hello}:amd64`, `oci:${join(dir, 'det-a')}:x`, {
      platform: amd64,
      oci: true,
      workDir: join(dir, 'work-a'),
    });
    const b = await convertImage(`oci:${hello}:amd64`, `oci:${join(dir, 'det-b')}:x`, {
      platform: amd64,
      oci: true,
      workDir: join(dir, 'work-b'),
    });
    expect(a.layers[0]!.reused).toBe(false);
    expect(b.layers[0]!.reused).toBe(false);
    expect(b.layers.map((l) => l.digest)).toEqual(a.layers.map((l) => l.digest));
    expect(b.manifest.digest).toBe(a.manifest.digest);
    expect(a.manifest.mediaType).toBe(MediaType.ociManifest);
    const m = JSON.parse(readFileSync(join(dir, 'det-a/blobs/sha256', a.manifest.digest.slice(7)), 'utf8'));
    expect(m.config.mediaType).toBe(MediaType.ociConfig);
    expect(m.layers[0].mediaType).toBe(MediaType.ociLayer);
    // Same work dir again: reused from the record, same result.
    const c = await convertImage(`oci:${hello}:amd64`, `oci:${join(dir, 'det-c')}:x`, {
      platform: amd64,
      oci: true,
      workDir: join(dir, 'work-a'),
    });
    expect(c.layers[0]!.reused).toBe(true);
    expect(c.manifest.digest).toBe(a.manifest.digest);
  });

  it('names the available platforms when none fits', async () => {
    await expect(
      convertImage(`oci:${hello}:multi-arch`, `oci:${join(dir, 'none')}:x`, {
        platform: parsePlatform('windows/amd64'),
        workDir: join(dir, 'work'),
      }),
    ).rejects.toThrow(/no image for platform windows\/amd64 \(available: linux\/amd64/);
  });
});

describe('convert a multi-layer image', () => {
  it('base, additions, whiteouts and an opaque dir: tree as extracted, e2fsck clean, deterministic', async () => {
    sh(`mkdir -p l1/etc l1/opq/keep l1/opq/gone l1/rm/deep l1/usr/bin
      echo base > l1/etc/conf && echo k > l1/opq/keep/f && echo g > l1/opq/gone/f && echo d > l1/rm/deep/f
      head -c 200000 /dev/urandom > l1/usr/bin/tool && chmod 755 l1/usr/bin/tool && ln -s tool l1/usr/bin/alias
      ln l1/etc/conf l1/etc/conf.hl && chown 1000:1001 l1/etc/conf && mkfifo l1/fifo
      mkdir -p l2/etc l2/new && echo more > l2/new/file && echo changed > l2/etc/conf2 && head -c 70000 /dev/urandom > l2/new/blob
      mkdir -p l3/opq/fresh l3/rm l3/etc && touch l3/opq/.wh..wh..opq l3/rm/.wh.deep l3/etc/.wh.conf.hl l3/.wh.fifo
      echo fresh > l3/opq/fresh/f && echo x > l3/new/.wh.nothing 2>/dev/null || (mkdir -p l3/new && touch l3/new/.wh.blob)
      ${TAR} -cpf l1.tar -C l1 . && ${TAR} -cpf l2.tar -C l2 . && ${TAR} -cpf l3.tar -C l3 .`);
    const tars = ['l1.tar', 'l2.tar', 'l3.tar'].map((t) => readFileSync(join(dir, t)));
    const src = join(dir, 'ml-src');
    await writeImageLayout(src, [gzipSync(tars[0]!), tars[1]!, gzipSync(tars[2]!)], 'v1');
    const out = join(dir, 'ml-out');
    const r = await convertImage(`oci:${src}:v1`, `oci:${out}:obd`, { workDir: join(dir, 'work-ml') });
    expect(r.layers).toHaveLength(3);
    // The expected tree: extract the layers and apply the whiteouts by hand.
    sh(`rm -rf ref && mkdir ref && ${TAR} -xpf l1.tar -C ref && ${TAR} -xpf l2.tar -C ref
      rm -rf ref/opq/keep ref/opq/gone ref/rm/deep ref/etc/conf.hl ref/fifo ref/new/blob
      ${TAR} -xpf l3.tar -C ref --exclude='*.wh.*'`);
    const want: Record<string, TreeEntry> = await describeTree(join(dir, 'ref'));
    delete want.fifo;
    const img = await openConverted(out, 'obd');
    try {
      for (const l of img.manifest.layers) await expectChunkDigests(out, l);
      expect(await describeExt4(img.fs)).toEqual(want);
      // Layer uuids chain: each layer's parent is the one below.
      for (let i = 1; i < 3; i++) expect(img.stack.layers[i]!.parentUuid).toBe(img.stack.layers[i - 1]!.uuid);
    } finally {
      await img.close();
    }
    await fsckClean(out, 'obd');
    const again = await convertImage(`oci:${src}:v1`, `oci:${join(dir, 'ml-out2')}:obd`, {
      workDir: join(dir, 'work-ml2'),
    });
    expect(again.layers.map((l) => l.digest)).toEqual(r.layers.map((l) => l.digest));
  });
});

describe('hostile input', () => {
  /** A valid one-file tar, as bytes. */
  function tarOf(name: string, content: string): Buffer {
    sh(`rm -rf h && mkdir h && printf '%s' '${content}' > h/${name}`);
    return execFileSync('tar', ['--numeric-owner', '--format=ustar', '-cf', '-', '-C', join(dir, 'h'), name]);
  }
  function setChecksum(b: Buffer, at = 0): void {
    b.fill(0x20, at + 148, at + 156);
    let s = 0;
    for (let i = at; i < at + 512; i++) s += b[i]!;
    b.write(`${s.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
  }
  function pathTraversal(): Buffer {
    const b = Buffer.from(tarOf('evil', 'x'));
    b.fill(0, 0, 100);
    b.write('../../etc/evil', 0, 'latin1');
    setChecksum(b);
    return b;
  }
  function hugeSize(): Buffer {
    const b = Buffer.from(tarOf('big', 'x'));
    b.write('77777777777\0', 124, 'latin1');
    setChecksum(b);
    return b;
  }
  function truncated(): Buffer {
    const b = tarOf('t', 'y'.repeat(5000));
    return b.subarray(0, 512 + 1024);
  }
  function badChecksum(): Buffer {
    const b = Buffer.from(tarOf('c', 'z'));
    b[0] = 'd'.charCodeAt(0);
    return b;
  }

  const cases: Array<[string, () => Buffer, RegExp]> = [
    ['path traversal', pathTraversal, /\.\./],
    ['a huge size field', hugeSize, /big|size|truncat|end/i],
    ['a truncated archive', truncated, /truncat|end|short/i],
    ['a bad header checksum', badChecksum, /checksum/i],
    ['a truncated gzip stream', () => gzipSync(tarOf('g', 'w'.repeat(3000))).subarray(0, 40), /./],
  ];
  for (const [what, make, re] of cases) {
    it(`${what}: a clear error naming the layer, no layout left behind`, async () => {
      const src = join(dir, `bad-src-${what.replaceAll(' ', '-')}`);
      const good = tarOf('ok', 'fine');
      const bad = make();
      await writeImageLayout(src, [good, bad], 'v1');
      const out = join(dir, `bad-out-${what.replaceAll(' ', '-')}`);
      const err = await convertImage(`oci:${src}:v1`, `oci:${out}:obd`, { workDir: join(dir, 'work-bad') }).catch(
        (e) => e,
      );
      expect(err).toBeInstanceOf(DadiError);
      expect(err.message).toMatch(re);
      expect(err.message).toContain('layer 2/2');
      expect(await readdir(dir)).not.toContain(basename(out));
      expect((await readdir(dir)).filter(isTempName)).toEqual([]);
    });
  }

  it('a source blob whose digest does not match: ECORRUPT, no layout left behind', async () => {
    const src = join(dir, 'bad-digest');
    const layer = tarOf('f', 'original');
    await writeImageLayout(src, [layer], 'v1');
    const { sha256Of } = await import('../../src/oci/digest.js');
    const path = join(src, 'blobs/sha256', sha256Of(layer).slice(7));
    const tampered = Buffer.from(layer);
    tampered[512] = 'X'.charCodeAt(0);
    await writeFile(path, tampered);
    const out = join(dir, 'bad-digest-out');
    const err = await convertImage(`oci:${src}:v1`, `oci:${out}:obd`, { workDir: join(dir, 'work-bad') }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(DadiError);
    expect(err.code).toBe('ECORRUPT');
    expect(err.message).toContain(sha256Of(layer));
    expect(await readdir(dir)).not.toContain(basename(out));
  });

  it('a config diff_id that does not match the layer: ECORRUPT', async () => {
    const src = join(dir, 'bad-diffid');
    await writeImageLayout(src, [tarOf('f', 'x')], 'v1', { diffIds: [`sha256:${'0'.repeat(64)}`] });
    await expect(
      convertImage(`oci:${src}:v1`, `oci:${join(dir, 'bad-diffid-out')}:obd`, { workDir: join(dir, 'work-bad') }),
    ).rejects.toThrow(/layer 1\/1.*diff_id/);
  });
});
