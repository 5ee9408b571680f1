import { describe, expect, it } from 'vitest';
import { tarOf } from '../../../test/tar-build.js';
import { encodeTarHeader, octal, TAR_BLOCK } from './header.js';
import { readTar } from './reader.js';
import { MAX_SPARSE_REGIONS } from './sparse.js';

async function* chunks(...parts: Uint8Array[]) {
  yield* parts;
}

async function read(tar: AsyncIterable<Uint8Array>) {
  const out = [];
  for await (const e of readTar(tar, 'layer.tar')) {
    const parts: Uint8Array[] = [];
    for await (const c of e.data()) parts.push(c);
    out.push({ path: Buffer.from(e.path).toString(), size: e.size, sparse: e.sparse, body: Buffer.concat(parts) });
  }
  return out;
}

const data = Buffer.from('a'.repeat(50) + 'b'.repeat(200) + 'c'.repeat(10));

describe('sparse tar members', () => {
  it('PAX 0.1 and 1.0 give the real name, size and map, and the stored bytes as data', async () => {
    const map = '100,50,4000,200,9000,10';
    const v01 = tarOf([
      {
        name: 'GNUSparseFile.1/f',
        type: '0',
        data,
        pax: {
          'GNU.sparse.size': '9100',
          'GNU.sparse.numblocks': '3',
          'GNU.sparse.name': 'dir/f',
          'GNU.sparse.map': map,
        },
      },
      { name: 'next', type: '0', data: Buffer.from('x') },
    ]);
    const mapText = Buffer.alloc(TAR_BLOCK);
    mapText.write('3\n100\n50\n4000\n200\n9000\n10\n');
    const v10 = tarOf([
      {
        name: 'GNUSparseFile.1/f',
        type: '0',
        data: Buffer.concat([mapText, data]),
        pax: {
          'GNU.sparse.major': '1',
          'GNU.sparse.minor': '0',
          'GNU.sparse.name': 'dir/f',
          'GNU.sparse.realsize': '9100',
        },
      },
      { name: 'next', type: '0', data: Buffer.from('x') },
    ]);
    for (const tar of [v01, v10]) {
      const [f, next] = await read(chunks(tar));
      expect(f).toEqual({
        path: 'dir/f',
        size: 9100,
        sparse: [
          { offset: 100, length: 50 },
          { offset: 4000, length: 200 },
          { offset: 9000, length: 10 },
        ],
        body: data,
      });
      expect(next).toMatchObject({ path: 'next', body: Buffer.from('x') });
    }
  });

  it('refuses maps that disagree with the sizes, overlap or are too large, naming the member', async () => {
    const pax = (records: Record<string, string>, body = data) =>
      chunks(
        tarOf([{ name: 'GNUSparseFile.1/f', type: '0', data: body, pax: { 'GNU.sparse.name': 'f', ...records } }]),
      );
    await expect(read(pax({ 'GNU.sparse.size': '9100', 'GNU.sparse.map': '100,50,4000,200' }))).rejects.toThrow(
      /layer\.tar: entry "f" at byte 1024: sparse map covers 250 bytes but 260 are stored/,
    );
    await expect(read(pax({ 'GNU.sparse.size': '9100', 'GNU.sparse.map': '100,50,120,200,9000,10' }))).rejects.toThrow(
      /region at 120 overlaps/,
    );
    await expect(read(pax({ 'GNU.sparse.size': '200', 'GNU.sparse.map': '100,50,140,200,9000,10' }))).rejects.toThrow(
      /overlaps|past the file's size/,
    );
    await expect(read(pax({ 'GNU.sparse.size': '9100', 'GNU.sparse.map': '100,50,4000' }))).rejects.toThrow(
      /GNU.sparse.map has 3 numbers/,
    );
    const huge = Buffer.alloc(TAR_BLOCK);
    huge.write('999999999999\n');
    await expect(
      read(pax({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '9' }, huge)),
    ).rejects.toThrow(
      new RegExp(`entry "f" .*sparse map of 999999999999 regions \\(more than ${MAX_SPARSE_REGIONS}\\)`),
    );
    const endless = Buffer.alloc(TAR_BLOCK, 0x31); // a number that never ends
    await expect(
      read(pax({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '9' }, endless)),
    ).rejects.toThrow(/sparse map line too long/);
    await expect(
      read(pax({ 'GNU.sparse.major': '2', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '9' })),
    ).rejects.toThrow(/GNU sparse format 2\.0 not supported/);
  });

  it('bounds the old GNU extension headers an archive may chain', async () => {
    const h = encodeTarHeader(
      { name: 'f', typeflag: 'S', mode: octal(0o644, 8), size: octal(0, 12), magic: 'ustar ', version: ' \0' },
      { checksum: false },
    );
    h[482] = 1; // isextended
    h.set(Buffer.from(octal(1 << 20, 12)), 483);
    let sum = 0;
    for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    h.set(Buffer.from(octal(sum, 8)), 148);
    const ext = Buffer.alloc(TAR_BLOCK);
    ext[504] = 1;
    let sent = 0;
    const endless = (async function* () {
      yield h;
      for (; sent < 1e6; sent++) yield ext; // bounded only so the test itself cannot hang
    })();
    await expect(read(endless)).rejects.toThrow(/entry "f" at byte 0: more than \d+ sparse extension headers/);
    expect(sent).toBeLessThan(MAX_SPARSE_REGIONS);
  });
});
