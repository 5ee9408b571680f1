// ZFileReader on hostile input: every bad file fails with a clear DadiError, never a crash, a hang,
// a huge allocation or wrong bytes. Also the onCorrupt retry hook and a small mutation fuzz sample.

import { beforeAll, describe, expect, it } from 'vitest';
import { mutate, rng } from '../../../test/mutate.js';
import { checkZFile, mixedData, type ZFileTarget, zfileBytes, zfileTargets } from '../../../test/zfile-fuzz.js';
import type { BlockFile } from '../../blockfile/blockfile.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { DadiError } from '../../errors.js';
import { decodeZFileHeader, encodeZFileHeader, ZFILE_HT_SPACE, type ZFileHeader } from './header.js';
import { isZFile, ZFileReader } from './reader.js';

const data = mixedData(50_000, 1);
let trailerMode: Uint8Array; // header 0x13, index fields in the trailer
let overwritten: Uint8Array; // header 0x1B

beforeAll(async () => {
  trailerMode = await zfileBytes(data, {});
  overwritten = await zfileBytes(data, { overwriteHeader: true });
});

/** A copy of `bytes` with the struct at `pos` (< 0: from the end) changed and its digest recomputed. */
function patch(bytes: Uint8Array, pos: number, change: Partial<ZFileHeader>): Uint8Array {
  const out = Uint8Array.from(bytes);
  const at = pos < 0 ? out.length + pos : pos;
  const h = decodeZFileHeader(out.subarray(at, at + ZFILE_HT_SPACE));
  out.set(encodeZFileHeader({ ...h, ...change }), at);
  return out;
}

async function openError(bytes: Uint8Array): Promise<DadiError> {
  try {
    await ZFileReader.open(new MemoryFile(bytes, 'bad.zfile'));
  } catch (e) {
    expect(e).toBeInstanceOf(DadiError);
    expect((e as Error).message).toMatch(/^bad\.zfile: /);
    return e as DadiError;
  }
  throw new Error('opened a bad file');
}

describe('ZFileReader on hostile input', () => {
  it('reads what was written, in both header modes', async () => {
    for (const bytes of [trailerMode, overwritten]) {
      const z = await ZFileReader.open(new MemoryFile(bytes));
      const out = new Uint8Array(z.size + 10);
      expect(await z.read(out, 0)).toBe(data.length);
      expect(Buffer.from(out.subarray(0, data.length)).equals(data)).toBe(true);
      expect(await z.read(out, z.size)).toBe(0);
      expect(await z.read(out, z.size + 1e6)).toBe(0);
      await expect(z.read(out, -1)).rejects.toMatchObject({ code: 'ERANGE' });
    }
  });

  it('rejects truncated files', async () => {
    for (const bytes of [trailerMode, overwritten]) {
      for (const len of [0, 1, 100, 511, 512, 600, 1023, bytes.length - 600, bytes.length - 513, bytes.length - 1]) {
        const e = await openError(bytes.subarray(0, len)).catch((x) => x);
        if (bytes === overwritten && len >= bytes.length - 512) continue; // only the unused trailer is cut
        expect(e).toBeInstanceOf(DadiError);
        expect(['EFORMAT', 'ECORRUPT']).toContain(e.code);
      }
    }
  });

  it('rejects a wrong magic, a missing header flag and a bad trailer', async () => {
    const m = Uint8Array.from(trailerMode);
    m[3] = 0x78;
    expect((await openError(m)).message).toMatch(/not a ZFile/);
    expect((await openError(patch(trailerMode, 0, { flags: 0x12n }))).message).toMatch(/not a ZFile/);
    expect((await openError(patch(trailerMode, -512, { flags: 0x17n }))).message).toMatch(/bad ZFile trailer/);
    expect((await openError(patch(trailerMode, 0, { flags: 0x11n }))).message).toMatch(/not of a data file/);
    expect(await isZFile(new MemoryFile(m))).toBe(false);
  });

  it('bounds the index before allocating', async () => {
    for (const [bytes, pos] of [
      [trailerMode, -512],
      [overwritten, 0],
    ] as const) {
      for (const indexSize of [2 ** 40, 1e9 + 1, 2 ** 53, 1e9]) {
        const e = await openError(patch(bytes, pos, { indexSize }));
        expect(e.code).toBe('EFORMAT');
        expect(e.message).toMatch(/index/);
      }
      expect((await openError(patch(bytes, pos, { indexOffset: 10 ** 9 }))).message).toMatch(/does not fit/);
      expect((await openError(patch(bytes, pos, { indexOffset: 2 ** 63 }))).message).toMatch(/does not fit/);
      expect((await openError(patch(bytes, pos, { indexOffset: 100 }))).message).toMatch(/does not fit/);
      expect((await openError(patch(bytes, pos, { dictSize: 2 ** 31 }))).message).toMatch(/does not fit/);
    }
  });

  it('refuses absurd sizes, block sizes and algorithms', async () => {
    const pos = -512;
    for (const originalFileSize of [2 ** 50, 2 ** 53 + 2, 1e15, 0, data.length + 4096]) {
      expect((await openError(patch(trailerMode, pos, { originalFileSize }))).message).toMatch(/original size/);
    }
    for (const blockSize of [0, 512, 3000, 8192, 131072, 2 ** 31]) {
      const e = await openError(patch(trailerMode, pos, { blockSize }));
      expect(e.code).toBe('EFORMAT');
    }
    expect((await openError(patch(trailerMode, pos, { algo: 0 }))).code).toBe('EUNSUPPORTED');
    expect((await openError(patch(trailerMode, pos, { algo: 9 }))).code).toBe('EUNSUPPORTED');
  });

  it('checks the index CRC and the block lengths', async () => {
    const t = decodeZFileHeader(trailerMode.subarray(trailerMode.length - 512));
    const bad = Uint8Array.from(trailerMode);
    bad[t.indexOffset + 2]! ^= 1;
    expect((await openError(bad)).code).toBe('ECORRUPT');
    for (const len of [0, 4, 70000, 0xffffffff]) {
      const b = Uint8Array.from(trailerMode);
      new DataView(b.buffer).setUint32(t.indexOffset + 8, len, true);
      const crc = (await import('../../util/crc32c.js')).crc32cRaw(
        b.subarray(t.indexOffset, t.indexOffset + 4 * t.indexSize),
      );
      const fixed = patch(b, -512, { indexCrc: crc });
      expect((await openError(fixed)).message).toMatch(/block 2 has a bad stored length/);
    }
  });

  it('fails reads of a corrupt block with ECORRUPT, and never returns its bytes', async () => {
    const z0 = await ZFileReader.open(new MemoryFile(overwritten));
    for (let k = 0; k < z0.blockCount; k += 3) {
      const b = Uint8Array.from(overwritten);
      b[z0.blockOffset(k) + ((k * 7) % (z0.blockOffset(k + 1) - z0.blockOffset(k)))]! ^= 0x10;
      const z = await ZFileReader.open(new MemoryFile(b, 'c.zfile'));
      const buf = new Uint8Array(100);
      await expect(z.read(buf, k * 4096 + 50)).rejects.toThrow(new RegExp(`c\\.zfile: ZFile block ${k} `));
      await expect(z.read(new Uint8Array(data.length), 0)).rejects.toMatchObject({ code: 'ECORRUPT' });
    }
  });

  it('lets onCorrupt evict and retry a block, up to 3 times', async () => {
    const z0 = await ZFileReader.open(new MemoryFile(overwritten));
    const k = 5;
    const bad = Uint8Array.from(overwritten);
    bad[z0.blockOffset(k) + 3]! ^= 1;
    // A "cache" that serves the corrupt bytes until the range is evicted, then the good ones.
    let evicted = 0;
    const flaky: BlockFile = {
      name: 'flaky',
      size: bad.length,
      async read(buf, offset) {
        const src = evicted >= 2 ? overwritten : bad;
        const n = Math.min(buf.length, src.length - offset);
        buf.set(src.subarray(offset, offset + n));
        return n;
      },
      async close() {},
    };
    const calls: unknown[] = [];
    const z = await ZFileReader.open(flaky, {
      onCorrupt: (info) => {
        calls.push(info);
        evicted++;
        return true;
      },
    });
    const buf = new Uint8Array(3 * 4096);
    expect(await z.read(buf, 4 * 4096)).toBe(buf.length);
    expect(Buffer.from(buf).equals(data.subarray(4 * 4096, 7 * 4096))).toBe(true);
    expect(calls).toHaveLength(2);
    expect(calls[0]).toEqual({
      block: k,
      offset: z0.blockOffset(k),
      length: z0.blockOffset(k + 1) - z0.blockOffset(k),
      reason: 'checksum',
    });

    evicted = -100; // never heals
    calls.length = 0;
    await expect(z.read(buf, 4 * 4096)).rejects.toMatchObject({ code: 'ECORRUPT' });
    expect(calls).toHaveLength(3);
  });

  it('survives a fuzz sample of mutated files', async () => {
    const targets: ZFileTarget[] = await zfileTargets();
    const rand = rng(20240601);
    const tally = { ok: 0, rejected: 0 };
    for (let i = 0; i < 400; i++) {
      const t = targets[i % targets.length]!;
      const m = mutate(t.bytes, rand, t.fields, t.hot);
      try {
        tally[await checkZFile(new MemoryFile(m.bytes), t.data, m.steps.length === 1, i)]++;
      } catch (e) {
        throw new Error(`case ${i} (${t.label}: ${m.steps.join(', ')}): ${(e as Error).stack}`);
      }
    }
    expect(tally.ok + tally.rejected).toBe(400);
    expect(tally.rejected).toBeGreaterThan(100);
  });
});
