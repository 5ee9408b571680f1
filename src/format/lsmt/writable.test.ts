import { appendFile, readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyOps,
  DiskModel,
  expectExtentsCover,
  expectReads,
  opArb,
  pattern,
  withTempDir,
} from '../../../test/lsmt-helpers.js';
import { LocalFile } from '../../blockfile/local.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { decodeHeader } from './header.js';
import { SealedLayer } from './sealed.js';
import { encodeInvalid, encodeSegment } from './segment.js';
import { WritableLayer } from './writable.js';

const VS = 1 << 20;
const P = '11111111-2222-4333-8444-555555555555';

describe('WritableLayer', () => {
  it('creates the reference file pair exclusively', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'l.data');
      const index = join(dir, 'l.index');
      const rw = await WritableLayer.create(data, index, { virtualSize: 64 * 2 ** 30, parentUuid: P.toLowerCase() });
      await rw.close();
      const dh = decodeHeader(await readFile(data));
      const ih = decodeHeader(await readFile(index));
      expect(dh).toMatchObject({ flags: 0x3, virtualSize: 64 * 2 ** 30, indexOffset: 0, parentUuid: P, uuid: rw.uuid });
      expect(ih).toMatchObject({
        flags: 0x1,
        virtualSize: 64 * 2 ** 30,
        indexOffset: 4096,
        parentUuid: P,
        uuid: rw.uuid,
      });
      expect((await stat(data)).size).toBe(4096);
      await expect(WritableLayer.create(data, join(dir, 'other'), { virtualSize: 1 })).rejects.toMatchObject({
        code: 'EEXIST',
      });
    });
  });

  it('appends data and index records; splits at 4 MiB and discards at 16383 sectors', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'd');
      const index = join(dir, 'i');
      const rw = await WritableLayer.create(data, index, { virtualSize: 64 << 20 });
      await rw.write(pattern(9 << 20, 1), 1 << 20);
      await rw.discard(0, 8 << 20);
      await rw.flush();
      await rw.close();
      expect((await stat(data)).size).toBe(4096 + (9 << 20));
      expect((await stat(index)).size).toBe(4096 + 16 * (3 + 2));
      const re = await WritableLayer.open(data, index);
      const got = re.index.toArray().map((s) => [s.offset, s.length, s.zeroed]);
      await re.close();
      expect(got).toEqual([
        [0, 16383, true],
        [16383, 1, true],
        [16384, 2048, false],
        [18432, 2048, false],
      ]);
    });
  });

  it('rejects unaligned writes, writes to read-only layers and bad index files', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'd');
      const index = join(dir, 'i');
      const rw = await WritableLayer.create(data, index, { virtualSize: VS });
      await expect(rw.write(new Uint8Array(100), 0)).rejects.toThrow(/multiples of 512/);
      await expect(rw.discard(1, 512)).rejects.toThrow(DadiError);
      await rw.write(pattern(512, 1), 0);
      await rw.close();
      await rw.close(); // twice is harmless
      await expect(rw.write(pattern(512, 1), 0)).rejects.toThrow(/closed/);
      const ro = await WritableLayer.open(data, index, { readOnly: true });
      await expect(ro.write(new Uint8Array(512), 0)).rejects.toThrow(/read-only/);
      await ro.close();
      await expect(WritableLayer.open(data)).rejects.toThrow(/needs its index file/);
      await expect(WritableLayer.open(data, data)).rejects.toThrow(/want 0x1/);
      // A record pointing past the data file.
      const rec = new Uint8Array(16);
      encodeSegment(new DataView(rec.buffer), 0, 0, 8, 4096, false, 0);
      await appendFile(index, rec);
      await expect(WritableLayer.open(data, index)).rejects.toMatchObject({ code: 'ERANGE', message: /record 1/ });
    });
  });

  it('rejects an RW index file of more than 128,000,000 entries before reading it', async () => {
    await withTempDir(async (dir) => {
      const rw = await WritableLayer.create(join(dir, 'd'), join(dir, 'i'), { virtualSize: VS });
      await rw.close();
      await truncate(join(dir, 'i'), 4096 + 16 * 128_000_001); // sparse
      await expect(WritableLayer.open(join(dir, 'd'), join(dir, 'i'))).rejects.toMatchObject({
        code: 'ERANGE',
        message: /128000001 entries exceed 128000000/,
      });
    });
  });

  it('replays group-commit padding and on-disk tags', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'd');
      const index = join(dir, 'i');
      const rw = await WritableLayer.create(data, index, { virtualSize: VS });
      await rw.write(pattern(1024, 2), 512);
      await rw.close();
      const pad = new Uint8Array(64);
      const v = new DataView(pad.buffer);
      for (let i = 0; i < 3; i++) encodeInvalid(v, i * 16);
      encodeSegment(v, 48, 2, 1, 9, false, 5); // overrides sector 2 with the second data sector
      await appendFile(index, pad);
      const re = await WritableLayer.open(data, index);
      expect(re.index.toArray()).toEqual([
        { offset: 1, length: 1, moffset: 8, zeroed: false, tag: 0 },
        { offset: 2, length: 1, moffset: 9, zeroed: false, tag: 0 },
      ]);
      await re.close();
    });
  });

  it('updateVirtualSize rewrites both headers', async () => {
    await withTempDir(async (dir) => {
      const rw = await WritableLayer.create(join(dir, 'd'), join(dir, 'i'), { virtualSize: VS });
      await rw.updateVirtualSize(3 * VS);
      expect(rw.size).toBe(3 * VS);
      await rw.close();
      expect(decodeHeader(await readFile(join(dir, 'd'))).virtualSize).toBe(3 * VS);
      expect(decodeHeader(await readFile(join(dir, 'i'))).virtualSize).toBe(3 * VS);
    });
  });

  it('random writes and discards read back directly, after reopen, after commit and after close-seal', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb(VS), { minLength: 1, maxLength: 60 }), async (ops) =>
        withTempDir(async (dir) => {
          const data = join(dir, 'd');
          const index = join(dir, 'i');
          const model = new DiskModel(VS);
          const rw = await WritableLayer.create(data, index, { virtualSize: VS });
          await applyOps(rw, model, ops);
          await expectReads(rw, model);
          await expectExtentsCover(rw, model);
          await rw.close();

          const re = await WritableLayer.open(data, index);
          await expectReads(re, model);
          const sink = new MemorySink();
          await re.commit(sink);
          const committed = await SealedLayer.open(new MemoryFile(sink.bytes(), 'committed'));
          await expectReads(committed, model);
          await expectExtentsCover(committed, model);

          await re.seal();
          const sealed = await SealedLayer.open(await LocalFile.open(data));
          await expectReads(sealed, model);
          await sealed.close();
        }),
      ),
      { numRuns: 25 },
    );
  });

  it('sparse layers: identity mapping, rebuilt by scanning at open', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'd');
      const model = new DiskModel(VS);
      const rw = await WritableLayer.create(data, join(dir, 'i'), { virtualSize: VS, sparse: true });
      expect((await stat(data)).size).toBe(VS + 4096);
      expect(decodeHeader(await readFile(data)).flags).toBe(0x13);
      await applyOps(rw, model, [
        { kind: 'write', offset: 8192, length: 20480, seed: 1 },
        { kind: 'write', offset: 512 * 1000, length: 4096, seed: 2 },
        { kind: 'discard', offset: 12288, length: 4096 },
      ]);
      await expectReads(rw, model);
      await rw.close();
      const re = await WritableLayer.open(data);
      expect(re.sparse).toBe(true);
      await expectReads(re, model);
      expect(re.index.toArray().map((s) => [s.offset, s.length, s.moffset])).toEqual([
        [16, 8, 24],
        [32, 24, 40],
        [1000, 8, 1008],
      ]);
      const sink = new MemorySink();
      await re.commit(sink);
      await expectReads(await SealedLayer.open(new MemoryFile(sink.bytes())), model);
      await re.close();
    });
  });
});
