import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress as zstdCompress } from 'zstd-napi';
import { testRandom } from '../../test/seed.js';
import { sha256Of } from '../oci/digest.js';
import { type LayerTar, unpackLayerFile, unpackStream } from './unpack.js';
import { prestartUnpackThread } from './unpack-thread.js';

let dir: string;
/** 3 MiB of half-compressible bytes: several input reads and many zlib output chunks. */
let plain: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-unpack-'));
  const r = testRandom(16);
  plain = Buffer.alloc(3 << 20);
  for (let i = 0; i < plain.length; i++) plain[i] = i % 512 < 256 ? Math.floor(r() * 256) : i & 0xff;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function chunksOf(
  tar: LayerTar,
): Promise<{ chunks: number[]; bytes: Buffer; end: { digest: string; size: number } }> {
  const parts: Uint8Array[] = [];
  try {
    for await (const c of tar) parts.push(c);
    return { chunks: parts.map((c) => c.length), bytes: Buffer.concat(parts), end: await tar.finish() };
  } finally {
    await tar.close();
  }
}

async function file(name: string, bytes: Uint8Array): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

describe('a layer tar decoded on a worker thread', () => {
  it('a thread started ahead takes the next job (the one after starts its own); a bad blob still fails', async () => {
    const blob = gzipSync(plain);
    const path = await file('layer.ahead.gz', blob);
    prestartUnpackThread();
    await new Promise((r) => setTimeout(r, 200)); // let it load before its job comes
    const verify = { digest: sha256Of(blob), size: blob.length };
    const [ahead, fresh] = await Promise.all([
      chunksOf(unpackLayerFile(path, 'layer 1/2', verify)),
      chunksOf(unpackLayerFile(path, 'layer 2/2', verify)),
    ]);
    for (const r of [ahead, fresh]) {
      expect(r.bytes.equals(plain)).toBe(true);
      expect(r.end).toEqual({ digest: sha256Of(plain), size: plain.length });
    }
    prestartUnpackThread();
    await expect(chunksOf(unpackLayerFile(path, 'layer 1/1', { digest: sha256Of(plain) }))).rejects.toThrow(
      /layer\.ahead\.gz: content hashes to/,
    );
  });

  for (const [kind, encode] of [
    ['gzip', (b: Buffer) => gzipSync(b)],
    ['zstd', (b: Buffer) => zstdCompress(b)],
    ['plain', (b: Buffer) => b],
  ] as const) {
    it(`${kind}: the same bytes, chunks and digest as decoding on this thread`, async () => {
      const blob = encode(plain);
      const path = await file(`layer.${kind}`, blob);
      const inWorker = await chunksOf(
        unpackLayerFile(path, 'layer 1/1', { digest: sha256Of(blob), size: blob.length }),
      );
      const here = await chunksOf(unpackStream(createReadStream(path, { highWaterMark: 1 << 20 }), 'layer 1/1'));
      expect(inWorker.bytes.equals(plain)).toBe(true);
      expect(inWorker.end).toEqual({ digest: sha256Of(plain), size: plain.length });
      expect(inWorker.chunks).toEqual(here.chunks);
      expect(here.end).toEqual(inWorker.end);
    });
  }

  it('a consumer that stops early can still finish: the rest is read and hashed', async () => {
    const blob = gzipSync(plain);
    const tar = unpackLayerFile(await file('early.gz', blob), 'layer 1/1');
    try {
      for await (const c of tar) if (c.length) break;
      expect(await tar.finish()).toEqual({ digest: sha256Of(plain), size: plain.length });
    } finally {
      await tar.close();
    }
  });

  it('a blob whose digest does not match fails ECORRUPT naming the file', async () => {
    const blob = gzipSync(plain);
    const path = await file('tampered.gz', blob);
    const tar = unpackLayerFile(path, 'layer 1/1', { digest: sha256Of(Buffer.from('other')), size: blob.length });
    await expect(chunksOf(tar)).rejects.toMatchObject({ code: 'ECORRUPT', message: expect.stringContaining(path) });
  });

  it('a broken gzip stream fails EFORMAT naming the layer', async () => {
    const blob = gzipSync(plain);
    blob.fill(0x55, 100, 200);
    const tar = unpackLayerFile(await file('broken.gz', blob), 'img: layer 2/3');
    await expect(chunksOf(tar)).rejects.toMatchObject({
      code: 'EFORMAT',
      message: expect.stringMatching(/^img: layer 2\/3: bad gzip stream/),
    });
  });

  it('close() before the end stops the worker', async () => {
    const tar = unpackLayerFile(await file('closed.gz', gzipSync(plain)), 'layer 1/1');
    const it = tar[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await tar.close();
    await tar.close();
  });
});
