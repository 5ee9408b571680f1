// Sparse tar members (issue #16): files with holes, archived by GNU tar in each of its sparse forms
// (old GNU 'S' headers with extension blocks, PAX 0.0, 0.1 and 1.0), apply as sparse ext4 files:
// content byte-equal to the source, blocks used ≈ the data stored, holes left as holes, e2fsck clean.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkfs } from '../../src/ext4/mkfs.js';
import { SparseMemoryFile } from '../../src/ext4/sparse-file.js';
import { applyTarBytes, e2fsck, mappedBlocks } from '../ext4-tools.js';
import { missing, requireOrSkip } from '../require.js';
import { tarOf } from '../tar-build.js';

const HAVE = requireOrSkip(
  'sparse tar members',
  missing({ tools: ['tar', 'e2fsck'], hint: 'apt-get install tar e2fsprogs' }),
);

/** Files with holes: name → real size and data runs [offset, bytes]. */
const FILES: Record<string, { size: number; runs: [number, number][] }> = {
  two: {
    size: 10 << 20,
    runs: [
      [3 * 4096 + 100, 5000],
      [(8 << 20) + 7, 900],
    ],
  },
  allhole: { size: 1 << 20, runs: [] },
  // 30 runs: more than the old GNU header's 4 slots and one extension block's 21.
  many: { size: 40 * 65536, runs: Array.from({ length: 30 }, (_, i): [number, number] => [i * 65536 + 1000, 700]) },
  // Beyond 4 GiB, data at the start and at the very end.
  huge: {
    size: 5 * 1024 ** 3 + 3,
    runs: [
      [0, 4096],
      [5 * 1024 ** 3 - 10, 13],
    ],
  },
};

let dir: string;

/** The expected bytes of every 4 KiB block a file's runs touch (all other blocks are zeros). */
function expectedBlocks(f: { runs: [number, number][] }): Map<number, Buffer> {
  const blocks = new Map<number, Buffer>();
  for (const [i, [off, n]] of f.runs.entries()) {
    for (let p = off; p < off + n; p++) {
      const b = Math.floor(p / 4096);
      if (!blocks.has(b)) blocks.set(b, Buffer.alloc(4096));
      blocks.get(b)![p % 4096] = 0x41 + i;
    }
  }
  return blocks;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-sparse-tar-'));
  const src = join(dir, 'src');
  await mkdir(src);
  for (const [name, f] of Object.entries(FILES)) {
    const fh = await open(join(src, name), 'w');
    try {
      await fh.truncate(f.size);
      for (const [i, [off, n]] of f.runs.entries()) await fh.write(Buffer.alloc(n, 0x41 + i), 0, n, off);
    } finally {
      await fh.close();
    }
  }
  await writeFile(join(src, 'plain'), 'after the sparse ones\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const FORMATS: Record<string, string[]> = {
  'old GNU': ['--format=gnu', '--sparse'],
  'PAX 0.0': ['--format=pax', '--sparse', '--sparse-version=0.0'],
  'PAX 0.1': ['--format=pax', '--sparse', '--sparse-version=0.1'],
  'PAX 1.0': ['--format=pax', '--sparse', '--sparse-version=1.0'],
};

describe.runIf(HAVE)('sparse tar members become sparse ext4 files', () => {
  for (const [format, flags] of Object.entries(FORMATS)) {
    it(`${format}`, { timeout: 60_000 }, async () => {
      const tarPath = join(dir, `${format.replace(/\W/g, '')}.tar`);
      execFileSync('tar', [...flags, '-cf', tarPath, '-C', join(dir, 'src'), ...Object.keys(FILES), 'plain']);
      const tar = await readFile(tarPath);
      expect(tar.length).toBeLessThan(1 << 20); // the archive itself holds no holes
      const file = new SparseMemoryFile(256 << 20, format);
      await mkfs(file, { size: 256 << 20 });
      const ro = await applyTarBytes(file, tar);
      for (const [name, f] of Object.entries(FILES)) {
        // Byte-equal without reading the holes: the mapped blocks are exactly the touched ones
        // (everything unmapped reads as zeros), and each holds the source's bytes.
        const st = await ro.stat(`/${name}`);
        expect(st.size, name).toBe(f.size);
        const want = expectedBlocks(f);
        expect(await mappedBlocks(ro, st.ino), name).toEqual([...want.keys()]);
        for (const [b, bytes] of want) {
          const got = Buffer.alloc(4096);
          const n = await ro.readIno(st.ino, got, b * 4096);
          expect(got.subarray(0, n).equals(bytes.subarray(0, n)), `${name} block ${b}`).toBe(true);
        }
        // Blocks used: the data blocks, plus at most one extent tree block.
        expect(st.blocks / 8 - want.size, name).toBeGreaterThanOrEqual(0);
        expect(st.blocks / 8 - want.size, name).toBeLessThanOrEqual(1);
      }
      const plain = await ro.stat('/plain');
      const buf = Buffer.alloc(plain.size);
      await ro.readIno(plain.ino, buf, 0);
      expect(buf.toString()).toBe('after the sparse ones\n');
      const img = join(dir, 'fs.img');
      await file.saveTo(img);
      const fsck = await e2fsck(img);
      expect(fsck.problems, fsck.output).toEqual([]);
      expect(fsck.code).toBe(0);
    });
  }

  it('regions not aligned to blocks: the shared blocks get zeros, the rest stay holes', async () => {
    const runs: [number, number][] = [
      [100, 50],
      [4000, 200],
      [3 * 4096 + 5, 10],
      [20000, 4096 * 3],
    ];
    const size = 20000 + 4096 * 3 + 9;
    const body = Buffer.concat(runs.map(([, n], i) => Buffer.alloc(n, 0x41 + i)));
    const map = runs.flat().join(',');
    const tar = tarOf([
      { name: 'x', type: '0', data: body, pax: { 'GNU.sparse.size': String(size), 'GNU.sparse.map': map } },
    ]);
    const file = new SparseMemoryFile(64 << 20, 'unaligned');
    await mkfs(file, { size: 64 << 20 });
    const ro = await applyTarBytes(file, tar, { sparse: false });
    const st = await ro.stat('/x');
    const got = Buffer.alloc(st.size);
    await ro.readIno(st.ino, got, 0);
    const want = Buffer.alloc(size);
    for (const [i, [off, n]] of runs.entries()) want.fill(0x41 + i, off, off + n);
    expect(got.equals(want)).toBe(true);
    expect(await mappedBlocks(ro, st.ino)).toEqual([...expectedBlocks({ runs }).keys()]);
  });
});
