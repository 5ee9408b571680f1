// Indexed (htree) directories (issue #16): directories that outgrow one block are written as
// `e2fsck -D` writes them — after `e2fsck -fyD` every directory's bytes are unchanged, so there is
// nothing to optimise (one-block directories: linear, in inode order) — for ~10k names (one index level, and two with long names), and again after
// a later layer adds names and whites others out. The kernel's htree lookups find every name.

import { lstat, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ext4, nameKey } from '../../src/ext4/fs.js';
import { mkfs } from '../../src/ext4/mkfs.js';
import { SparseMemoryFile } from '../../src/ext4/sparse-file.js';
import { run } from '../cli.js';
import { applyTarBytes, changedByE2fsckD, directoryBytes, e2fsck } from '../ext4-tools.js';
import { missing, requireOrSkip } from '../require.js';
import { tarOf } from '../tar-build.js';

const HAVE = requireOrSkip('htree directories', missing({ tools: ['e2fsck'], hint: 'apt-get install e2fsprogs' }));
const MOUNT = requireOrSkip(
  'htree lookups by the kernel',
  missing({ root: true, files: ['/dev/loop-control'], tools: ['mount', 'umount'] }),
);

const SIZE = 256 << 20;
const shortName = (i: number) => `entry-${i}-${'x'.repeat(i % 40)}`;
const longName = (i: number) => `long-${i}-${'y'.repeat(180 + (i % 60))}`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-htree-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** e2fsck -fn is clean, and e2fsck -fyD on a copy leaves every directory byte-identical. */
async function expectNothingToOptimise(file: SparseMemoryFile, name: string): Promise<void> {
  const image = join(dir, `${name}.img`);
  await file.saveTo(image);
  const fsck = await e2fsck(image);
  expect(fsck.problems, fsck.output).toEqual([]);
  expect(fsck.code).toBe(0);
  expect(await changedByE2fsckD(image)).toEqual([]);
}

describe.runIf(HAVE)('htree directories', () => {
  const file = new SparseMemoryFile(SIZE, 'htree');

  it('10k names (root index) and 10k long names (an indirect index level) are indexed as e2fsck -D would', {
    timeout: 60_000,
  }, async () => {
    await mkfs(file, {
      inodeRatio: 4096,
      size: SIZE,
      uuid: Buffer.alloc(16, 7),
      hashSeed: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
    });
    const fs = await Ext4.open(file);
    const big = await fs.mkdir(2, 'big');
    const wide = await fs.mkdir(2, 'wide');
    const mid = await fs.mkdir(2, 'mid');
    for (let i = 0; i < 10_000; i++) {
      await fs.mknod(big, nameKey(shortName(i)), 0o010644);
      await fs.mknod(wide, nameKey(longName(i)), 0o010644);
    }
    for (let i = 0; i < 400; i++) await fs.mknod(mid, nameKey(`m${i}`), 0o010644);
    const small = await fs.mkdir(2, 'small');
    for (const n of ['zz', 'aa', 'mm', 'bb']) await fs.mknod(small, nameKey(n), 0o010644);
    await fs.close();
    const dirs = await directoryBytes(await saveTmp(file));
    expect(dirs.get('/big')!.indexed).toBe(true);
    expect(dirs.get('/wide')!.bytes.readUInt8(24 + 6)).toBe(1); // indirect levels
    expect(dirs.get('/mid')!.indexed).toBe(true);
    expect(dirs.get('/')!.indexed).toBe(false); // one block: linear
    await expectNothingToOptimise(file, 'first');
  });

  it('stay indexed and optimal after a later layer adds names and whites others out', { timeout: 60_000 }, async () => {
    const entries = [];
    for (let i = 0; i < 3000; i += 2)
      entries.push({ name: `big/.wh.${shortName(i)}`, type: '0', data: Buffer.alloc(0) });
    for (let i = 0; i < 1500; i++) entries.push({ name: `big/added-${i}`, type: '0', data: Buffer.from(`${i}`) });
    // Replaced: a new entry for an old name (a linear directory stays in e2fsck's inode order).
    entries.push({ name: 'small/zz', type: '0', data: Buffer.from('new') });
    for (let i = 0; i < 200; i++)
      entries.push({ name: `wide/.wh.${longName(i * 7)}`, type: '0', data: Buffer.alloc(0) });
    const ro = await applyTarBytes(file, tarOf(entries));
    expect(await ro.lookup(`/big/${shortName(2)}`)).toBeUndefined();
    expect(await ro.lookup(`/big/${shortName(3)}`)).toBeDefined();
    expect(await ro.lookup('/big/added-1499')).toBeDefined();
    expect((await ro.readdir('/big')).length).toBe(10_000 - 1500 + 1500);
    await expectNothingToOptimise(file, 'second');
  });

  it.runIf(MOUNT)('the kernel finds every name through the index', { timeout: 60_000 }, async () => {
    const image = await saveTmp(file);
    const mnt = join(dir, 'm', 'mnt');
    await mkdir(mnt, { recursive: true });
    const m = await run('mount', ['-o', 'ro,loop', image, mnt]);
    expect(m.code, m.stderr).toBe(0);
    try {
      const want = [
        ...Array.from({ length: 10_000 }, (_, i) => shortName(i)).filter((_, i) => i >= 3000 || i % 2 === 1),
        ...Array.from({ length: 1500 }, (_, i) => `added-${i}`),
      ];
      expect((await readdir(join(mnt, 'big'))).sort()).toEqual(want.sort());
      // Each lookup by name goes through dx_probe: a misplaced name would be ENOENT.
      for (const n of want) await lstat(join(mnt, 'big', n));
      for (let i = 200; i < 10_000; i += 3)
        if (i % 7 !== 0 || i / 7 >= 200) await lstat(join(mnt, 'wide', longName(i)));
    } finally {
      const u = await run('umount', [mnt]);
      expect(u.code, u.stderr).toBe(0);
    }
  });
});

async function saveTmp(file: SparseMemoryFile): Promise<string> {
  const image = join(dir, 'tmp.img');
  await file.saveTo(image);
  return image;
}
