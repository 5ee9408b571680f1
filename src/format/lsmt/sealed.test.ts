import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures, U1 } from '../../../test/fixtures.js';
import { checkExportsWhole } from '../../../test/lsmt-export-check.js';
import { pattern } from '../../../test/lsmt-helpers.js';
import { LocalFile } from '../../blockfile/local.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { commitLayer } from './commit.js';
import { encodeHeader } from './header.js';
import { SealedLayer } from './sealed.js';
import { encodeSegment } from './segment.js';
import { SegmentIndex } from './segment-index.js';
import { WritableLayer } from './writable.js';

const fx = haveFixtures('lsmt sealed-layer fixtures');
const sample = (p: string) => fixture(`overlaybd-samples/${p}`);

/** A small committed layer: data at [0,16) and [64,80) sectors, zeroed [32,40), vsize 64 KiB. */
async function smallLayer(): Promise<Uint8Array> {
  const src = new MemoryFile(0, 'src');
  await src.write(encodeHeader({ flags: 0x3, virtualSize: 65536 }), 0);
  await src.write(pattern(32 * 512, 3), 4096);
  const segs = SegmentIndex.fromSegments([
    { offset: 0, length: 16, moffset: 8, zeroed: false, tag: 0 },
    { offset: 32, length: 8, moffset: 0, zeroed: true, tag: 0 },
    { offset: 64, length: 16, moffset: 24, zeroed: false, tag: 0 },
  ]);
  const sink = new MemorySink();
  await commitLayer(segs, [src], sink, { uuid: U1 });
  return new Uint8Array(sink.bytes());
}

const u64 = (b: Uint8Array, at: number, v: number) => {
  const d = new DataView(b.buffer, b.byteOffset, b.byteLength);
  d.setUint32(at, v % 2 ** 32, true);
  d.setUint32(at + 4, Math.floor(v / 2 ** 32), true);
};
const u32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);

/** A mutation applied in place. */
const mut =
  (f: (b: Uint8Array) => unknown) =>
  (b: Uint8Array): Uint8Array => {
    f(b);
    return b;
  };

async function openBytes(b: Uint8Array): Promise<SealedLayer> {
  return SealedLayer.open(new MemoryFile(b, 'bad.lsmt'));
}

describe('SealedLayer', () => {
  it('reads data, zeroed ranges and holes; any byte range; short at the end', async () => {
    const layer = await openBytes(await smallLayer());
    expect(layer.size).toBe(65536);
    expect(layer.uuid).toBe(U1.toUpperCase());
    expect(layer.segmentCount).toBe(3);
    const all = new Uint8Array(65536);
    expect(await layer.read(all, 0)).toBe(65536);
    const want = new Uint8Array(65536);
    want.set(pattern(32 * 512, 3).subarray(0, 8192), 0);
    want.set(pattern(32 * 512, 3).subarray(8192), 64 * 512);
    expect(Buffer.from(all).equals(Buffer.from(want))).toBe(true);
    const odd = new Uint8Array(1000);
    expect(await layer.read(odd, 8000)).toBe(1000);
    expect([...odd]).toEqual([...want.subarray(8000, 9000)]);
    expect(await layer.read(new Uint8Array(4096), 65536 - 512)).toBe(512);
    expect(await layer.read(new Uint8Array(10), 1 << 20)).toBe(0);
    const ext = [];
    for await (const e of layer.extents(0, 1 << 20)) ext.push(e);
    expect(ext).toEqual([
      { offset: 0, length: 8192 },
      { offset: 32768, length: 8192 },
    ]);
  });

  describe.skipIf(!fx)('reference fixtures', () => {
    it('opens mkfs-only.lsmt and l1.lsmt with their metadata', async () => {
      for (const name of ['mkfs-only.lsmt', 'l1.lsmt']) {
        const layer = await SealedLayer.open(await LocalFile.open(sample(`lsmt/${name}`)));
        try {
          expect(layer.size).toBe(2 ** 30);
          expect(layer.uuid).toBe(U1.toUpperCase());
          expect(layer.header.flags).toBe(7);
          expect(layer.trailer.indexSize % 256).toBe(0);
          expect(layer.describe()).toMatchObject({ kind: 'committed', version: '1.1' });
          // An ext4 superblock magic at 1024 + 56.
          const sb = new Uint8Array(1024);
          await layer.read(sb, 1024);
          expect(sb[56]).toBe(0x53);
          expect(sb[57]).toBe(0xef);
        } finally {
          await layer.close();
        }
      }
    });

    it('l1.lsmt reads the same as the RW layer it was committed from', async () => {
      const layer = await SealedLayer.open(await LocalFile.open(sample('lsmt/l1.lsmt')));
      const rw = await WritableLayer.open(sample('rw/l1.data'), sample('rw/l1.index'), { readOnly: true });
      try {
        const a: { offset: number; length: number }[] = [];
        const b: { offset: number; length: number }[] = [];
        for await (const e of layer.extents(0, layer.size)) a.push(e);
        for await (const e of rw.extents(0, rw.size)) b.push(e);
        expect(a).toEqual(b);
        for (const e of a) {
          const x = new Uint8Array(e.length);
          const y = new Uint8Array(e.length);
          await layer.read(x, e.offset);
          await rw.read(y, e.offset);
          expect(Buffer.from(x).equals(Buffer.from(y))).toBe(true);
        }
      } finally {
        await layer.close();
        await rw.close();
      }
    });
  });

  describe('hostile input gives a clear DadiError', () => {
    const cases: [string, (b: Uint8Array) => Uint8Array, string, RegExp][] = [
      ['empty file', () => new Uint8Array(0), 'EFORMAT', /too small/],
      ['truncated to one page', (b) => b.subarray(0, 4096), 'EFORMAT', /too small/],
      ['truncated mid-file', (b) => b.subarray(0, b.length - 100), 'EFORMAT', /trailer/],
      ['wrong header magic', mut((b) => (b[0] = 0x4d)), 'EFORMAT', /header.*no LSMT magic/],
      ['header flag clear', mut((b) => u32(b, 28, 0x6)), 'EFORMAT', /header flag/],
      ['header says index file', mut((b) => u32(b, 28, 0x5)), 'EFORMAT', /not a data file/],
      ['trailer flagged as header', mut((b) => u32(b, b.length - 4096 + 28, 0x7)), 'EFORMAT', /flags say header/],
      ['trailer not sealed', mut((b) => u32(b, b.length - 4096 + 28, 0x2)), 'EFORMAT', /not sealed/],
      [
        'index_size 2^40',
        mut((b) => u64(b, b.length - 4096 + 40, 2 ** 40)),
        'ERANGE',
        /index_size 1099511627776 exceeds 1000000/,
      ],
      ['index_size 1,000,001', mut((b) => u64(b, b.length - 4096 + 40, 1_000_001)), 'ERANGE', /exceeds/],
      ['index_offset past EOF', mut((b) => u64(b, b.length - 4096 + 32, 2 ** 45)), 'ERANGE', /does not fit/],
      [
        'index running into the trailer',
        mut((b) => u64(b, b.length - 4096 + 32, b.length - 4096 - 16)),
        'ERANGE',
        /does not fit/,
      ],
      [
        'moffset past the index',
        mut((b) => encodeSegment(new DataView(b.buffer), 4096 + 32 * 512, 0, 16, 10_000, false, 0)),
        'ERANGE',
        /outside the data area/,
      ],
      [
        'moffset inside the header',
        mut((b) => encodeSegment(new DataView(b.buffer), 4096 + 32 * 512, 0, 16, 2, false, 0)),
        'ERANGE',
        /outside the data area/,
      ],
      [
        'overlapping entries',
        mut((b) => encodeSegment(new DataView(b.buffer), 4096 + 32 * 512 + 16, 10, 8, 40, true, 0)),
        'EFORMAT',
        /overlaps/,
      ],
      [
        'trailer virtual size smaller than what the index maps',
        mut((b) => u64(b, b.length - 4096 + 48, 16 * 512)),
        'EFORMAT',
        /virtual size 8192 is smaller than what the index maps \(up to byte 40960\)/,
      ],
      [
        'trailer virtual size of 2^50 (bounded before any export allocates or truncates)',
        mut((b) => u64(b, b.length - 4096 + 48, 2 ** 50)),
        'ERANGE',
        /virtual size 1125899906842624 bytes exceeds the 256 TiB/,
      ],
      [
        'zeroed moffset past the index',
        mut((b) => encodeSegment(new DataView(b.buffer), 4096 + 32 * 512 + 16, 32, 8, 99_999, true, 0)),
        'ERANGE',
        /zeroed entry/,
      ],
    ];
    for (const [what, mutate, code, msg] of cases) {
      it(what, async () => {
        const err = await openBytes(mutate(await smallLayer())).catch((e) => e);
        expect(err).toBeInstanceOf(DadiError);
        expect(err.code).toBe(code);
        expect(err.message).toMatch(/^bad\.lsmt: /);
        expect(err.message).toMatch(msg);
      });
    }

    it('reads exactly index_size entries of a close-sealed file (garbage up to the 512 boundary)', async () => {
      const indexOffset = 4096 + 16 * 512;
      const b = new Uint8Array(indexOffset + 512 + 4096);
      b.set(encodeHeader({ flags: 0x3, virtualSize: 65536 }), 0);
      b.set(pattern(16 * 512, 9), 4096);
      const v = new DataView(b.buffer);
      encodeSegment(v, indexOffset, 0, 8, 8, false, 1);
      encodeSegment(v, indexOffset + 16, 8, 8, 16, false, 1);
      b.fill(0xa5, indexOffset + 32, indexOffset + 512);
      b.set(encodeHeader({ flags: 0x6, virtualSize: 65536, indexOffset, indexSize: 2 }), indexOffset + 512);
      const layer = await openBytes(b);
      expect(layer.describe()).toMatchObject({ kind: 'close-sealed', segments: 2, padding: 0 });
      const got = new Uint8Array(8192);
      await layer.read(got, 0);
      expect(Buffer.from(got).equals(Buffer.from(pattern(16 * 512, 9)))).toBe(true);
    });

    it('ignores tags on disk', async () => {
      const b = await smallLayer();
      const v = new DataView(b.buffer);
      v.setUint8(4096 + 32 * 512 + 15, 7); // tag of entry 0
      const layer = await openBytes(b);
      expect(layer.index.tags[0]).toBe(0);
    });
  });

  it('fuzz sample: mutated layers either read and export whole, or throw a DadiError', async () => {
    const base = await smallLayer();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.constantFrom(0, 4096, 4096 + 32 * 512, base.length - 4096),
        async (flips, cut, region) => {
          let b = Uint8Array.from(base);
          for (const [pos, val] of flips) b[(region + (pos % 512)) % b.length] = val;
          if (cut !== undefined) b = b.subarray(0, cut % (b.length + 1));
          try {
            const layer = await openBytes(b);
            const buf = new Uint8Array(Math.min(layer.size, 1 << 20));
            await layer.read(buf, 0);
            for await (const _ of layer.extents(0, Math.min(layer.size, 1 << 30))) void _;
            await checkExportsWhole(layer);
          } catch (e) {
            if (!(e instanceof DadiError)) throw e;
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
