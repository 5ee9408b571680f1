import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures, U1 } from '../../../test/fixtures.js';
import { pattern, withTempDir } from '../../../test/lsmt-helpers.js';
import { LocalFile } from '../../blockfile/local.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink } from '../../blockfile/sink.js';
import { commitLayer } from './commit.js';
import { decodeHeader } from './header.js';
import { SealedLayer } from './sealed.js';
import { SegmentIndex } from './segment-index.js';
import { NULL_UUID } from './uuid.js';
import { WritableLayer } from './writable.js';

const fx = haveFixtures('lsmt commit fixtures');
const sample = (p: string) => fixture(`overlaybd-samples/${p}`);

async function commitFixture(opts: Parameters<WritableLayer['commit']>[1]): Promise<Buffer> {
  const rw = await WritableLayer.open(sample('rw/l1.data'), sample('rw/l1.index'), { readOnly: true });
  try {
    const sink = new MemorySink();
    await rw.commit(sink, opts);
    return sink.bytes();
  } finally {
    await rw.close();
  }
}

describe.skipIf(!fx)('commit of the reference RW layer (byte-identical)', () => {
  it('with uuid U1 gives lsmt/l1.lsmt', async () => {
    expect((await commitFixture({ uuid: U1 })).equals(await readFile(sample('lsmt/l1.lsmt')))).toBe(true);
  });

  it('without uuid gives lsmt/l1-nouuid.lsmt', async () => {
    expect((await commitFixture({})).equals(await readFile(sample('lsmt/l1-nouuid.lsmt')))).toBe(true);
  });

  it('with a commit message gives lsmt/l1-usertag.lsmt', async () => {
    const got = await commitFixture({ uuid: U1, userTag: 'hello user_tag' });
    expect(got.equals(await readFile(sample('lsmt/l1-usertag.lsmt')))).toBe(true);
  });

  it('l1.lsmt and l1-usertag.lsmt differ only in the user_tag bytes of header and trailer', async () => {
    const a = await readFile(sample('lsmt/l1.lsmt'));
    const b = await readFile(sample('lsmt/l1-usertag.lsmt'));
    expect(a.length).toBe(b.length);
    const diffs: number[] = [];
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diffs.push(i);
    const trailer = a.length - 4096;
    const inTag = (i: number) => (i >= 134 && i < 390) || (i >= trailer + 134 && i < trailer + 390);
    expect(diffs.length).toBeGreaterThan(0);
    expect(diffs.every(inTag)).toBe(true);
  });

  it('close-seal in place, then commit the sealed file: same bytes as l1.lsmt', async () => {
    await withTempDir(async (dir) => {
      const data = join(dir, 'l1.data');
      const index = join(dir, 'l1.index');
      await copyFile(sample('rw/l1.data'), data);
      await copyFile(sample('rw/l1.index'), index);
      const rw = await WritableLayer.open(data, index);
      const segments = rw.index.size;
      await rw.seal();
      const sealed = await SealedLayer.open(await LocalFile.open(data));
      try {
        expect(sealed.header.flags).toBe(0x3);
        expect(sealed.trailer.flags).toBe(0x6);
        expect(sealed.trailer.indexSize).toBe(segments); // exact count, no padding
        expect(sealed.uuid).toBe('0A682DBC-29C5-4339-A6DA-51B6EF1D53A3');
        const sink = new MemorySink();
        await sealed.commit(sink, { uuid: U1 });
        expect(sink.bytes().equals(await readFile(sample('lsmt/l1.lsmt')))).toBe(true);
      } finally {
        await sealed.close();
      }
    });
  });
});

describe('commitLayer rules', () => {
  async function source(vsize: number, dataSectors: number, parent?: string): Promise<MemoryFile> {
    const { encodeHeader } = await import('./header.js');
    const f = new MemoryFile(0, 'src');
    await f.write(encodeHeader({ flags: 0x3, virtualSize: vsize, parentUuid: parent }), 0);
    await f.write(pattern(dataSectors * 512, 7), 4096);
    return f;
  }

  it('copies in 32 KiB steps, coalesces to 16320-sector entries, pads to 256, emits zeroed at the cursor', async () => {
    const src = await source(1 << 30, 20000);
    const segs = SegmentIndex.fromSegments([
      { offset: 0, length: 16383, moffset: 8, zeroed: false, tag: 0 },
      { offset: 16383, length: 3617, moffset: 8 + 16383, zeroed: false, tag: 0 },
      { offset: 30000, length: 100, moffset: 4242, zeroed: true, tag: 0 },
      { offset: 30100, length: 50, moffset: 1, zeroed: true, tag: 0 },
      { offset: 40000, length: 10, moffset: 8, zeroed: false, tag: 0 },
    ]);
    const sink = new MemorySink();
    const r = await commitLayer(segs, [src], sink, { userTag: 'm' });
    expect(r).toMatchObject({ entries: 4, indexSize: 256, dataBytes: 20010 * 512, uuid: NULL_UUID });
    const out = sink.bytes();
    expect(out.length).toBe(4096 + 20010 * 512 + 256 * 16 + 4096);
    const layer = await SealedLayer.open(new MemoryFile(out, 'out'));
    expect(layer.index.toArray()).toEqual([
      { offset: 0, length: 16320, moffset: 8, zeroed: false, tag: 0 },
      { offset: 16320, length: 3680, moffset: 16328, zeroed: false, tag: 0 },
      { offset: 30000, length: 150, moffset: 20008, zeroed: true, tag: 0 },
      { offset: 40000, length: 10, moffset: 20008, zeroed: false, tag: 0 },
    ]);
    expect(layer.userTag).toBe('m');
    const got = new Uint8Array(20000 * 512);
    await layer.read(got, 0);
    expect(Buffer.from(got).equals(Buffer.from(pattern(20000 * 512, 7)))).toBe(true);
  });

  it('takes the parent uuid from the only source, or from the last one; options override', async () => {
    const P1 = '11111111-1111-4111-8111-111111111111';
    const P2 = '22222222-2222-4222-8222-222222222222';
    const a = await source(4096 * 10, 1, P1);
    const b = await source(4096 * 20, 1, P2);
    const empty = SegmentIndex.empty();
    const h = async (srcs: MemoryFile[], opts = {}) => {
      const sink = new MemorySink();
      await commitLayer(empty, srcs, sink, opts);
      return decodeHeader(sink.bytes().subarray(0, 4096));
    };
    expect((await h([a])).parentUuid).toBe(P1);
    expect(await h([a, b])).toMatchObject({ parentUuid: P2, virtualSize: 4096 * 10 });
    expect((await h([a, b], { parentUuid: U1, virtualSize: 512 })).virtualSize).toBe(512);
    expect((await h([a], { parentUuid: U1 })).parentUuid).toBe(U1.toUpperCase());
    await expect(h([a], { uuid: 'nope' })).rejects.toThrow(/not a valid uuid/);
  });

  it('writes an empty index for an empty layer and leaves the sink open when asked', async () => {
    const sink = new MemorySink();
    let ended = false;
    sink.end = async () => {
      ended = true;
    };
    const r = await commitLayer(SegmentIndex.empty(), [await source(1 << 20, 0)], sink, { endSink: false });
    expect(r).toMatchObject({ entries: 0, indexSize: 0, size: 8192 });
    expect(ended).toBe(false);
  });

  it('fails with EIO naming the source when mapped data is missing', async () => {
    const src = await source(1 << 20, 1);
    const segs = SegmentIndex.fromSegments([{ offset: 0, length: 64, moffset: 8, zeroed: false, tag: 0 }]);
    await expect(commitLayer(segs, [src], new MemorySink())).rejects.toMatchObject({ code: 'EIO', message: /src/ });
  });
});
