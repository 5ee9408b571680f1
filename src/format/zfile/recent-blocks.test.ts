// Reads within one ZFile block: the blocks decoded last are copied, not read and decoded again;
// reads of a block being decoded join that decode; a failed decode is neither kept nor hidden.
// Against seeded random reads (single- and multi-block, at once) the bytes are the written ones.

import { beforeAll, describe, expect, it } from 'vitest';
import { testRandom } from '../../../test/seed.js';
import { mixedData, zfileBytes } from '../../../test/zfile-fuzz.js';
import type { BlockFile } from '../../blockfile/blockfile.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { ZFileReader } from './reader.js';
import { RecentBlocks } from './recent-blocks.js';

const BS = 4096;
const data = mixedData(300_000, 7); // 74 blocks, the last one short
let stored: Uint8Array;

beforeAll(async () => {
  stored = await zfileBytes(data, {});
});

/** `stored` as a file that counts its reads, optionally serving `bad` bytes instead. */
function counted(bytes = () => stored): BlockFile & { reads: number } {
  const f = {
    name: 'counted.zfile',
    size: stored.length,
    reads: 0,
    async read(buf: Uint8Array, offset: number) {
      f.reads++;
      await new Promise((r) => setImmediate(r)); // a read takes a turn of the loop, as a cache read does
      const src = bytes();
      const n = Math.min(buf.length, src.length - offset);
      buf.set(src.subarray(offset, offset + n));
      return n;
    },
    async close() {},
  };
  return f;
}

const expected = (offset: number, n: number) => Buffer.from(data.subarray(offset, Math.min(data.length, offset + n)));

describe('ZFileReader reads within one block', () => {
  it('reads a block decoded a moment ago without reading it again', async () => {
    const f = counted();
    const z = await ZFileReader.open(f);
    const before = f.reads;
    const a = new Uint8Array(256);
    expect(await z.read(a, 3 * BS + 512)).toBe(256);
    expect(f.reads).toBe(before + 1);
    const b = new Uint8Array(BS);
    expect(await z.read(b, 3 * BS)).toBe(BS); // the whole block, kept from the read above
    expect(await z.read(a, 3 * BS + 1000)).toBe(256);
    expect(f.reads).toBe(before + 1);
    expect(Buffer.from(b).equals(expected(3 * BS, BS))).toBe(true);
    expect(Buffer.from(a).equals(expected(3 * BS + 1000, 256))).toBe(true);
    // A read spanning blocks goes to the file, kept blocks or not.
    const c = new Uint8Array(2 * BS);
    await z.read(c, 3 * BS);
    expect(f.reads).toBe(before + 2);
    expect(Buffer.from(c).equals(expected(3 * BS, 2 * BS))).toBe(true);
  });

  it('joins reads of a block to its decode in flight', async () => {
    const f = counted();
    const z = await ZFileReader.open(f);
    const before = f.reads;
    const bufs = Array.from({ length: 5 }, () => new Uint8Array(100));
    await Promise.all(bufs.map((b, i) => z.read(b, 9 * BS + i * 700)));
    expect(f.reads).toBe(before + 1);
    bufs.forEach((b, i) => {
      expect(Buffer.from(b).equals(expected(9 * BS + i * 700, 100))).toBe(true);
    });
  });

  it('keeps the last 64 blocks read (4 KiB blocks), least recently used out first', async () => {
    const f = counted();
    const z = await ZFileReader.open(f);
    const one = new Uint8Array(10);
    for (let k = 0; k < 65; k++) await z.read(one, k * BS);
    const before = f.reads;
    await z.read(one, 64 * BS); // kept
    await z.read(one, 1 * BS); // kept (block 0 went out for block 64)
    expect(f.reads).toBe(before);
    await z.read(one, 0);
    expect(f.reads).toBe(before + 1);
  });

  it('the last, short block', async () => {
    const z = await ZFileReader.open(counted());
    const last = Math.floor((data.length - 1) / BS);
    const tail = new Uint8Array(BS);
    expect(await z.read(tail, last * BS)).toBe(data.length - last * BS);
    expect(Buffer.from(tail.subarray(0, data.length - last * BS)).equals(expected(last * BS, BS))).toBe(true);
    const again = new Uint8Array(50);
    expect(await z.read(again, data.length - 50)).toBe(50);
    expect(Buffer.from(again).equals(expected(data.length - 50, 50))).toBe(true);
  });

  it('fails every reader of a corrupt block, keeps nothing, and decodes it anew once it heals', async () => {
    const z0 = await ZFileReader.open(new MemoryFile(stored));
    const k = 11;
    const bad = Uint8Array.from(stored);
    bad[z0.blockOffset(k) + 2]! ^= 4;
    let healed = false;
    const f = counted(() => (healed ? stored : bad));
    const z = await ZFileReader.open(f);
    const reads = [0, 1, 2].map(() => z.read(new Uint8Array(64), k * BS + 64));
    for (const r of reads) await expect(r).rejects.toMatchObject({ code: 'ECORRUPT' });
    healed = true;
    const buf = new Uint8Array(64);
    expect(await z.read(buf, k * BS + 64)).toBe(64);
    expect(Buffer.from(buf).equals(expected(k * BS + 64, 64))).toBe(true);
  });

  it('returns the written bytes for seeded random reads at once (within and across blocks)', async () => {
    const rnd = testRandom(61);
    const int = (below: number) => Math.floor(rnd() * below);
    const z = await ZFileReader.open(counted());
    for (let round = 0; round < 40; round++) {
      const reads = Array.from({ length: 1 + int(12) }, () => {
        const offset = int(data.length + 100);
        const len = int(3) === 0 ? 1 + int(5 * BS) : 1 + int(BS);
        return { offset, buf: new Uint8Array(len) };
      });
      const got = await Promise.all(reads.map((r) => z.read(r.buf, r.offset)));
      reads.forEach((r, i) => {
        const want = expected(r.offset, r.buf.length);
        expect(got[i]).toBe(r.offset >= data.length ? 0 : want.length);
        expect(Buffer.from(r.buf.subarray(0, want.length)).equals(want)).toBe(true);
      });
    }
  });
});

describe('RecentBlocks', () => {
  it('a failed decode is not kept: the next decode runs again', async () => {
    const r = new RecentBlocks(2);
    let runs = 0;
    const fail = () => {
      runs++;
      return Promise.reject(new Error('bad'));
    };
    await expect(r.decode(1, 8, fail)).rejects.toThrow('bad');
    expect(r.get(1)).toBeUndefined();
    const ok = await r.decode(1, 8, async (into) => {
      runs++;
      into.fill(3);
    });
    expect(Array.from(ok)).toEqual(Array(8).fill(3));
    expect(r.get(1)).toBe(ok);
    expect(runs).toBe(2);
  });
});
