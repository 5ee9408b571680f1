// ZFileWriter on worker threads: the same bytes as inline (reference fixtures and a large stream
// that switches over mid-way), and a failing pool rejects write()/end() naming the sink.

import { randomFillSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../../test/fixtures.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { closeCompressPool, compressPool } from './compress-pool.js';
import { ZFileReader } from './reader.js';
import { compressFile } from './whole-file.js';
import { ZFileWriter, type ZFileWriterOptions } from './writer.js';

const have = haveFixtures('zfile threaded writer fixture tests');
const sample = (rel: string) => readFile(fixture(`overlaybd-samples/${rel}`));

beforeAll(async () => {
  await compressPool(2).whenReady();
});
afterAll(async () => {
  await closeCompressPool();
});

/** Mixed content: random 4 KiB pages, text, zeros. */
function content(bytes: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 12288) {
    randomFillSync(data, i, Math.min(4096, bytes - i));
    data.write(`block ${i} `.repeat(400).slice(0, 4096), i + 4096);
  }
  return data;
}

async function compress(data: Uint8Array, opts: ZFileWriterOptions, piece: number): Promise<Buffer> {
  const sink = new MemorySink();
  const w = new ZFileWriter(sink, opts);
  for (let p = 0; p < data.length; p += piece) await w.write(data.subarray(p, p + piece));
  await w.end();
  return Buffer.from(sink.bytes());
}

describe.skipIf(!have)('threaded ZFileWriter against the fixtures', () => {
  it.each([
    ['lsmt/l1.lsmt', 'zfile/l1.zfile-lz4', { overwriteHeader: true }],
    ['lsmt/l1.lsmt', 'zfile/l1.zfile-lz4-bs64', { overwriteHeader: true, blockSize: 65536 }],
    ['lsmt/l1.lsmt', 'zfile/l1.zfile-zstd', { overwriteHeader: true, algorithm: 'zstd' }],
    ['inputs/plain.bin', 'zfile/plain.zfile-lz4', {}],
  ] as [string, string, ZFileWriterOptions][])('%s gives %s byte for byte', async (src, want, opts) => {
    const sink = new MemorySink();
    const stats = await compressFile(new MemoryFile(await sample(src)), sink, {
      ...opts,
      threads: 2,
      parallelAfter: 0,
    });
    expect(Buffer.compare(sink.bytes(), await sample(want))).toBe(0);
    expect(stats.workerBatches).toBeGreaterThan(0);
  });
});

describe('threaded ZFileWriter', () => {
  it('gives the inline bytes for any chunking, switching to threads mid-stream', async () => {
    const data = content(5 * 1024 * 1024 + 777);
    for (const algorithm of ['lz4', 'zstd'] as const) {
      const want = await compress(data, { algorithm, threads: 0 }, 1 << 20);
      for (const [piece, parallelAfter] of [
        [100_003, 1_500_000],
        [3 << 20, 0],
        [4095, 0],
      ] as const) {
        const got = await compress(data, { algorithm, threads: 2, parallelAfter }, piece);
        expect(got.equals(want)).toBe(true);
      }
    }
    const z = await ZFileReader.open(new MemoryFile(await compress(data, { threads: 2, parallelAfter: 0 }, 1 << 20)));
    const back = Buffer.alloc(data.length);
    expect(await z.read(back, 0)).toBe(data.length);
    expect(back.equals(data)).toBe(true);
  });

  it('rejects write()/end() with a DadiError naming the sink when the workers go away', async () => {
    const w = new ZFileWriter(new MemorySink(), { threads: 2, parallelAfter: 0 });
    const data = content(2 << 20);
    await w.write(data);
    await closeCompressPool(); // fails the jobs in flight
    const err = await (async () => {
      for (let i = 0; i < 8; i++) await w.write(data);
      await w.end();
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DadiError);
    expect((err as DadiError).message).toMatch(/^zfile into memory: compression failed: .*closed/);
    await expect(w.end()).rejects.toBeInstanceOf(DadiError);
    await compressPool(2).whenReady(); // the pool starts again for later writers
  });
});
