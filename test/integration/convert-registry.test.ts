// `convert` from a registry to a registry (Debian's docker-registry on loopback): a two-layer
// image pushed by the test converts, its layers read back from the registry form the expected
// filesystem and each has its chunk digest list; `dadi digests add` restores the lists of a copy
// tagged without them; a hostile layer fails with nothing tagged.

import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage, goJson } from '../../src/convert/index.js';
import { DadiError } from '../../src/errors.js';
import { Ext4 } from '../../src/ext4/index.js';
import { LayerStack } from '../../src/format/lsmt/index.js';
import { loadChunkDigests } from '../../src/image/chunk-integrity.js';
import { MediaType } from '../../src/oci/media-types.js';
import { ChunkDigestsAnnotation } from '../../src/p2p/chunk-digests.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistrySource } from '../../src/registry/image-endpoint.js';
import { parseReference } from '../../src/registry/reference.js';
import { runDadi } from '../cli.js';
import { openLayerFile } from '../lsmt-helpers.js';
import { listedChunkDigests, pushLayout, readAll, writeImageLayout } from './convert-helpers.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';

const HAVE = haveRegistry('convert registry → registry');
let dir: string;
let reg: TestRegistry;
let client: RegistryClient;

describe.skipIf(!HAVE)('convert registry → registry', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-convert-reg-'));
    reg = await startRegistry();
    client = new RegistryClient({ credentials: reg.credentials, backoffBaseMs: 10 });
  });
  afterAll(async () => {
    await client?.close();
    await reg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('converts, uploads layers, config and manifest; the result reads back', async () => {
    const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe' });
    sh(`mkdir -p a/etc b/etc && echo one > a/etc/one && echo two > b/etc/two && touch b/etc/.wh.one
      tar --numeric-owner -cf a.tar -C a . && tar --numeric-owner -cf b.tar -C b .`);
    const src = join(dir, 'src');
    await writeImageLayout(
      src,
      [gzipSync(await readFile(join(dir, 'a.tar'))), await readFile(join(dir, 'b.tar'))],
      'v1',
    );
    await pushLayout(client, src, 'v1', `${reg.host}/app:v1`);

    const work = join(dir, 'work');
    const opts = { client, workDir: work, oci: true };
    const r = await convertImage(`${reg.host}/app:v1`, `${reg.host}/app:v1-obd`, opts);
    expect(r.layers).toHaveLength(2);
    const got = await client.resolveImage(parseReference(`${reg.host}/app:v1-obd`));
    expect(got.digest).toBe(r.manifest.digest);
    expect(got.mediaType).toBe(MediaType.ociManifest);
    expect(got.manifest.layers.map((l) => l.digest)).toEqual(r.layers.map((l) => l.digest));

    const sealed = [];
    const source = new RegistrySource(`${reg.host}/app:v1-obd`, got.ref, client, false);
    for (const [i, l] of got.manifest.layers.entries()) {
      const p = join(dir, `layer${i}`);
      const blob = await client.fetchBlob(got.ref, l.digest);
      await writeFile(p, blob);
      sealed.push(await openLayerFile(p));
      // Each layer's chunk digest list was uploaded beside it and lists its 1 MiB chunks.
      expect(l.annotations?.[ChunkDigestsAnnotation.digest]).toBe(r.layers[i]!.chunkDigests!.digest);
      const listed = await listedChunkDigests(source, l, blob);
      expect(listed.entries).toBe(Math.ceil(blob.length / (1 << 20)));
      expect(listed.listed).toEqual(listed.wanted);
    }
    const stack = LayerStack.fromLayers(sealed, { checkChain: true });
    try {
      const fs = await Ext4.open(stack);
      expect((await readAll(fs, '/etc/two')).toString()).toBe('two\n');
      expect((await fs.readdir('/etc')).map((e) => e.name).sort()).toEqual(['two']);
    } finally {
      await stack.close();
    }

    // Again, to another repository: every layer comes from the record and is uploaded there.
    const again = await convertImage(`${reg.host}/app:v1`, `${reg.host}/other:obd`, opts);
    expect(again.layers.every((l) => l.reused)).toBe(true);
    expect(again.manifest.digest).toBe(r.manifest.digest);
    const other = await client.resolveImage(parseReference(`${reg.host}/other:obd`));
    expect(other.digest).toBe(r.manifest.digest);
    // The reused layers' lists were uploaded to that repository too.
    const otherSource = new RegistrySource(`${reg.host}/other:obd`, other.ref, client, false);
    for (const l of other.manifest.layers) {
      expect((await loadChunkDigests(otherSource, l))?.blob).toEqual({ digest: l.digest, size: l.size });
    }
  });

  it('dadi digests add gives an image converted without lists the lists convert publishes', async () => {
    const converted = await client.resolveImage(parseReference(`${reg.host}/app:v1-obd`));
    // The same image as the reference tools would tag it: no chunk digest annotations.
    const doc = JSON.parse(converted.bytes.toString());
    for (const l of doc.layers) {
      delete l.annotations[ChunkDigestsAnnotation.digest];
      delete l.annotations[ChunkDigestsAnnotation.size];
    }
    const stripped = parseReference(`${reg.host}/app:stripped`);
    await client.putManifest(stripped, Buffer.from(goJson(doc)), converted.mediaType);
    const add = await runDadi(['digests', 'add', '--json', `${reg.host}/app:stripped`]);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout).layers.map((l: { added: boolean }) => l.added)).toEqual([true, true]);
    // Byte for byte the manifest convert wrote: same lists, annotations in the same places.
    const after = await client.resolveImage(stripped);
    expect(after.bytes.equals(converted.bytes)).toBe(true);
    // Once more: nothing to add, the tag stays.
    const again = await runDadi(['digests', 'add', '--json', `${reg.host}/app:stripped`]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).manifest.digest).toBe(converted.digest);
    expect(JSON.parse(again.stdout).layers.every((l: { added: boolean }) => !l.added)).toBe(true);
  });

  it('a hostile layer: clear error, no manifest pushed', async () => {
    const src = join(dir, 'bad');
    const bad = Buffer.alloc(2048);
    bad.write('../escape', 0, 'latin1');
    bad.write('0000644\0', 100, 'latin1');
    bad.write('00000000001\0', 124, 'latin1');
    bad.write('ustar\x0000', 257, 'latin1');
    bad.fill(0x20, 148, 156);
    let s = 0;
    for (let i = 0; i < 512; i++) s += bad[i]!;
    bad.write(`${s.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await writeImageLayout(src, [bad], 'v1');
    await pushLayout(client, src, 'v1', `${reg.host}/bad:v1`);
    const err = await convertImage(`${reg.host}/bad:v1`, `${reg.host}/bad:obd`, {
      client,
      workDir: join(dir, 'work'),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(DadiError);
    expect(err.message).toMatch(/layer 1\/1.*"\.\.\/escape"/);
    await expect(client.getManifest(parseReference(`${reg.host}/bad:obd`))).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
  });
});
