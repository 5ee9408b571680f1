// ZFile against the reference fixtures: byte-identical writer output, decompression, the 2021 base
// layer, digest tamper detection and random reads.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../../test/fixtures.js';
import { rng } from '../../../test/mutate.js';
import { LocalFile } from '../../blockfile/local.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { openTarPayload } from '../tar/detect.js';
import { isZFile, ZFileReader } from './reader.js';
import { compressFile, decompressFile } from './whole-file.js';
import type { ZFileWriterOptions } from './writer.js';

const have = haveFixtures('zfile fixture tests');
const sample = (rel: string) => readFile(fixture(`overlaybd-samples/${rel}`));

const WRITER_CASES: [string, string, ZFileWriterOptions][] = [
  ['lsmt/l1.lsmt', 'zfile/l1.lsmt.zfile-lz4', {}],
  ['lsmt/l1.lsmt', 'zfile/l1.zfile-lz4', { overwriteHeader: true }],
  ['lsmt/l1.lsmt', 'zfile/l1.zfile-lz4-bs64', { overwriteHeader: true, blockSize: 65536 }],
  ['lsmt/l1.lsmt', 'zfile/l1.zfile-zstd', { overwriteHeader: true, algorithm: 'zstd' }],
  ['inputs/plain.bin', 'zfile/plain.zfile-lz4', {}],
  ['inputs/plain.bin', 'zfile/plain.zfile-zstd', { algorithm: 'zstd' }],
  ['inputs/plain.bin', 'zfile/plain.zfile-lz4-bs64', { blockSize: 65536 }],
];

describe.skipIf(!have)('ZFile fixtures', () => {
  it.each(WRITER_CASES)('compressing %s reproduces %s byte for byte', async (src, want, opts) => {
    const sink = new MemorySink();
    const stats = await compressFile(new MemoryFile(await sample(src)), sink, opts);
    expect(Buffer.compare(sink.bytes(), await sample(want))).toBe(0);
    expect(stats.headerOverwritten).toBe(!!opts.overwriteHeader);
  });

  it.each(WRITER_CASES)('%s is what decompressing %s gives', async (src, zf) => {
    const sink = new MemorySink();
    const size = await decompressFile(new MemoryFile(await sample(zf)), sink);
    const want = await sample(src);
    expect(size).toBe(want.length);
    expect(Buffer.compare(sink.bytes(), want)).toBe(0);
  });

  it('opens both header modes and exposes the structs', async () => {
    const over = await ZFileReader.open(new MemoryFile(await sample('zfile/l1.zfile-lz4')));
    expect(over.header.flags).toBe(0x1bn);
    expect(over.trailer).toBeUndefined();
    const trail = await ZFileReader.open(new MemoryFile(await sample('zfile/l1.lsmt.zfile-lz4')));
    expect(trail.header.flags).toBe(0x13n);
    expect(trail.trailer?.flags).toBe(0x16n);
    for (const z of [over, trail]) {
      expect([z.size, z.blockCount, z.blockSize, z.algorithm, z.verify]).toEqual([2250752, 550, 4096, 'lz4', true]);
      await z.verifyBlocks();
    }
  });

  it('random reads at odd offsets and sizes equal the uncompressed file', async () => {
    const want = await sample('lsmt/l1.lsmt');
    const rand = rng(7);
    for (const name of ['l1.zfile-lz4', 'l1.zfile-zstd', 'l1.zfile-lz4-bs64']) {
      const z = await ZFileReader.open(new MemoryFile(await sample(`zfile/${name}`)));
      for (let i = 0; i < 300; i++) {
        const off = Math.floor(rand() * (want.length + 5000));
        const len = rand() < 0.5 ? 1 + Math.floor(rand() * 9000) : Math.floor(rand() * 1.5e6);
        const buf = Buffer.alloc(len);
        const n = await z.read(buf, off);
        const exp = want.subarray(off, off + len);
        expect(n).toBe(exp.length);
        expect(Buffer.compare(buf.subarray(0, n), exp)).toBe(0);
      }
    }
  });

  it('l1.zfile-lz4.tar minus its tar framing is l1.zfile-lz4', async () => {
    const payload = await openTarPayload(new MemoryFile(await sample('zfile/l1.zfile-lz4.tar')));
    const bytes = Buffer.alloc(payload.size);
    await payload.read(bytes, 0);
    expect(Buffer.compare(bytes, await sample('zfile/l1.zfile-lz4'))).toBe(0);
  });

  it('isZFile: true for ZFiles, false for other files, throws when the digest is tampered', async () => {
    const zf = await sample('zfile/l1.zfile-lz4');
    expect(await isZFile(new MemoryFile(zf))).toBe(true);
    expect(await isZFile(new MemoryFile(await sample('lsmt/l1.lsmt')))).toBe(false);
    expect(await isZFile(new MemoryFile(new Uint8Array(100)))).toBe(false);
    for (const name of ['l1.zfile-lz4', 'l1.lsmt.zfile-lz4']) {
      const tampered = Buffer.from(await sample(`zfile/${name}`));
      tampered[400]! ^= 0x20;
      await expect(isZFile(new MemoryFile(tampered))).rejects.toMatchObject({ code: 'ECORRUPT' });
      await expect(ZFileReader.open(new MemoryFile(tampered))).rejects.toThrow(/header digest mismatch/);
      await expect(ZFileReader.openIfZFile(new MemoryFile(tampered))).rejects.toThrow(/header digest mismatch/);
    }
  });

  it('openIfZFile: undefined where isZFile is false, the same reader as open otherwise', async () => {
    for (const other of [await sample('lsmt/l1.lsmt'), new Uint8Array(100), new Uint8Array(0)]) {
      expect(await ZFileReader.openIfZFile(new MemoryFile(other))).toBeUndefined();
    }
    for (const name of ['l1.zfile-lz4', 'l1.lsmt.zfile-lz4', 'l1.zfile-zstd']) {
      const bytes = await sample(`zfile/${name}`);
      const a = await ZFileReader.open(new MemoryFile(bytes));
      const b = await ZFileReader.openIfZFile(new MemoryFile(bytes));
      expect(b).toBeDefined();
      expect([b!.header, b!.trailer, b!.size, b!.blockCount]).toEqual([a.header, a.trailer, a.size, a.blockCount]);
      for (let k = 0; k <= a.blockCount; k++) expect(b!.blockOffset(k)).toBe(a.blockOffset(k));
      const [x, y] = [Buffer.alloc(a.size), Buffer.alloc(a.size)];
      await a.read(x, 0);
      await b!.read(y, 0);
      expect(x.equals(y)).toBe(true);
    }
    // A trailer-mode ZFile whose trailer is cut off still fails as open does.
    const cut = (await sample('zfile/l1.lsmt.zfile-lz4')).subarray(0, 1000);
    await expect(ZFileReader.openIfZFile(new MemoryFile(cut))).rejects.toMatchObject({ code: 'EFORMAT' });
  });

  it('a corrupt block fails with ECORRUPT naming the file and block', async () => {
    const zf = Buffer.from(await sample('zfile/l1.zfile-lz4'));
    const z0 = await ZFileReader.open(new MemoryFile(zf));
    const k = 123;
    zf[z0.blockOffset(k) + 5]! ^= 1;
    const z = await ZFileReader.open(new MemoryFile(zf, 'l1-bad.zfile'));
    const buf = Buffer.alloc(4096);
    await expect(z.read(buf, k * 4096 + 100)).rejects.toThrow(/l1-bad\.zfile: ZFile block 123 .*checksum mismatch/);
    await expect(z.read(buf, 0)).resolves.toBe(4096);
    await expect(z.verifyBlocks()).rejects.toMatchObject({
      code: 'ECORRUPT',
      message: expect.stringMatching(/block 123/),
    });
  });
});

describe.skipIf(!have)('the 2021 base layer ext4_64', () => {
  let dir = '';
  let path = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-zfile-'));
    path = join(dir, 'ext4_64.tar');
    await writeFile(path, gunzipSync(await readFile(fixture('overlaybd/ext4_64.tar.gz'))));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('opens through the tar view despite garbage flags, and every block CRC matches', async () => {
    const z = await ZFileReader.open(await openTarPayload(await LocalFile.open(path)));
    try {
      expect(z.header.flags).toBe(0x7ffea4640b43n);
      expect(z.trailer?.flags).toBe(0x7ffea4640b46n);
      expect([z.size, z.blockCount, z.blockSize, z.algorithm]).toEqual([541937664, 132309, 4096, 'lz4']);
      await z.verifyBlocks();
      const head = Buffer.alloc(4096);
      await z.read(head, 0);
      expect(head.subarray(0, 8).toString('latin1')).toBe('LSMT\0\x01\x02\0');
      const tail = Buffer.alloc(4096);
      expect(await z.read(tail, z.size - 4096)).toBe(4096);
      expect(tail.readUInt32LE(28) & 0x7).toBe(0x6); // LSMT trailer flags
    } finally {
      await z.close();
    }
  });

  it('is not taken as a ZFile before the tar framing is removed', async () => {
    const f = await LocalFile.open(path);
    try {
      expect(await isZFile(f)).toBe(false);
      await expect(ZFileReader.open(f)).rejects.toBeInstanceOf(DadiError);
    } finally {
      await f.close();
    }
  });
});
