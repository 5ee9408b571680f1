import { describe, expect, it } from 'vitest';
import { Ext4, mkfs, SparseMemoryFile } from '../ext4/index.js';
import { elfLinks } from './elf-links.js';
import { argFiles, prefetchLaunchFiles, scriptInterpreter } from './launch-files.js';

const MiB = 1 << 20;

/** A 64-bit little-endian ELF with PT_INTERP, one PT_LOAD and PT_DYNAMIC naming `needed`. */
function elf(interp: string, needed: string[], pad = 0): Buffer {
  const phoff = 64;
  const phnum = 3;
  const interpAt = phoff + phnum * 56;
  const interpBytes = Buffer.from(`${interp}\0`, 'latin1');
  const strAt = interpAt + interpBytes.length;
  const names = Buffer.concat([Buffer.from([0]), ...needed.map((n) => Buffer.from(`${n}\0`, 'latin1'))]);
  const dynAt = (strAt + names.length + 7) & ~7;
  const dynEntries: Array<[bigint, bigint]> = [];
  let at = 1;
  for (const n of needed) {
    dynEntries.push([1n, BigInt(at)]);
    at += n.length + 1;
  }
  const vbase = 0x400000;
  dynEntries.push([5n, BigInt(vbase + strAt)], [10n, BigInt(names.length)], [0n, 0n]);
  const size = dynAt + dynEntries.length * 16 + pad;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(62, 18); // x86-64
  b.writeBigUInt64LE(BigInt(phoff), 0x20);
  b.writeUInt16LE(64, 0x34);
  b.writeUInt16LE(56, 0x36);
  b.writeUInt16LE(phnum, 0x38);
  const ph = (i: number, type: number, offset: number, filesz: number) => {
    const p = phoff + i * 56;
    b.writeUInt32LE(type, p);
    b.writeBigUInt64LE(BigInt(offset), p + 8);
    b.writeBigUInt64LE(BigInt(vbase + offset), p + 16);
    b.writeBigUInt64LE(BigInt(filesz), p + 32);
  };
  ph(0, 3, interpAt, interpBytes.length);
  ph(1, 1, 0, size);
  ph(2, 2, dynAt, dynEntries.length * 16);
  interpBytes.copy(b, interpAt);
  names.copy(b, strAt);
  dynEntries.forEach(([tag, val], i) => {
    b.writeBigInt64LE(tag, dynAt + i * 16);
    b.writeBigUInt64LE(val, dynAt + i * 16 + 8);
  });
  return b;
}

async function readAtOf(bytes: Buffer) {
  return async (offset: number, length: number) => bytes.subarray(offset, offset + length);
}

describe('elfLinks', () => {
  it('names the interpreter and the needed libraries', async () => {
    const b = elf('/lib64/ld-linux-x86-64.so.2', ['libm.so.6', 'libc.so.6']);
    expect(await elfLinks(b.subarray(0, 4096), await readAtOf(b))).toEqual({
      interpreter: '/lib64/ld-linux-x86-64.so.2',
      needed: ['libm.so.6', 'libc.so.6'],
    });
  });

  it('gives undefined for what is not a 64-bit little-endian ELF, and for hostile header sizes', async () => {
    const read = await readAtOf(Buffer.alloc(0));
    expect(await elfLinks(Buffer.from('#!/bin/sh\necho hi\n'), read)).toBeUndefined();
    const b = elf('/lib/ld.so', []);
    b.writeUInt16LE(60000, 0x38); // phnum far past the header
    expect(await elfLinks(b, read)).toBeUndefined();
    const c = elf('/lib/ld.so', []);
    c[4] = 1; // 32-bit
    expect(await elfLinks(c, read)).toBeUndefined();
  });

  it("reads a script's interpreter", () => {
    expect(scriptInterpreter(Buffer.from('#!/usr/bin/python3 -u\nprint(1)\n'))).toBe('/usr/bin/python3');
    expect(scriptInterpreter(Buffer.from('#!python\n'))).toBeUndefined();
  });
});

describe('launch files', () => {
  /** Files by path (parents made), symlinks by path → target. */
  async function buildFs(files: Record<string, Buffer>, links: Record<string, string> = {}) {
    const file = new SparseMemoryFile(256 * MiB);
    await mkfs(file, { size: 256 * MiB, time: 1700000000 });
    const fs = await Ext4.open(file);
    const dirOf = async (parts: string[]) => {
      let dir = 2;
      for (const p of parts) dir = (await fs.lookupIn(dir, p))?.ino ?? (await fs.mkdir(dir, p));
      return dir;
    };
    for (const [path, bytes] of Object.entries(files)) {
      const parts = path.split('/').filter(Boolean);
      const w = await fs.createFile(await dirOf(parts.slice(0, -1)), parts.at(-1)!);
      await w.write(bytes);
      await w.end();
    }
    for (const [path, target] of Object.entries(links)) {
      const parts = path.split('/').filter(Boolean);
      await fs.symlink(await dirOf(parts.slice(0, -1)), parts.at(-1)!, Buffer.from(target));
    }
    await fs.close();
    return file;
  }

  /** The device ranges of the file at `path` (its first `max` bytes). */
  async function rangesOf(file: SparseMemoryFile, path: string, max = Number.POSITIVE_INFINITY) {
    const fs = await Ext4.open(file);
    const ino = (await fs.lookup(path, { follow: true }))!;
    const size = Math.min((await fs.inode(ino)).size, max);
    return (await fs.extents(ino))
      .filter((e) => e.lblk * 4096 < size)
      .map((e) => [e.pblk * 4096, Math.min(e.len * 4096, size - e.lblk * 4096)] as const);
  }

  it('fetches the first command found on PATH, its interpreter, libraries and the named files, and nothing else', async () => {
    const prog = elf('/lib64/ld-linux-x86-64.so.2', ['libc.so.6'], 20_000);
    const file = await buildFs(
      {
        '/usr/bin/prog': prog,
        '/bin/prog': Buffer.alloc(50_000, 7), // later on PATH: not run, not fetched
        '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2': Buffer.alloc(210_000, 1),
        '/usr/lib/x86_64-linux-gnu/libc.so.6': Buffer.alloc(1_900_000, 2),
        '/usr/lib/x86_64-linux-gnu/libbig.so': Buffer.alloc(3 * MiB, 3),
        '/etc/ld.so.cache': Buffer.alloc(9000, 4),
        '/etc/passwd': Buffer.from('root:x:0:0:root:/root:/bin/bash\n'),
        '/etc/group': Buffer.from('root:x:0:\n'),
      },
      { '/lib64': 'usr/lib/x86_64-linux-gnu', '/lib': 'usr/lib' },
    );
    const warmed: Array<[number, number]> = [];
    const stats = await prefetchLaunchFiles(
      file,
      {
        files: ['/etc/passwd', '/etc/group', '/etc/missing'],
        exec: ['/usr/local/bin/prog', '/usr/bin/prog', '/bin/prog'],
      },
      {
        maxFileBytes: 2 * MiB,
        warm: async (offset, length) => {
          warmed.push([offset, length]);
        },
      },
    );
    const expected = (
      await Promise.all(
        [
          '/usr/bin/prog',
          '/lib64/ld-linux-x86-64.so.2',
          '/usr/lib/x86_64-linux-gnu/libc.so.6',
          '/etc/ld.so.cache',
          '/etc/passwd',
          '/etc/group',
        ].map((p) => rangesOf(file, p)),
      )
    ).flat();
    const key = (r: readonly [number, number]) => `${r[0]}+${r[1]}`;
    expect(new Set(warmed.map(key))).toEqual(new Set(expected.map(key)));
    expect(stats.files).toBe(6);
    expect(stats.bytes).toBe(expected.reduce((a, r) => a + r[1], 0));
  });

  it('fetches the files absolute-path arguments name (symlinks followed), up to 1 MiB each, and no other argument', async () => {
    const file = await buildFs(
      {
        '/usr/lib/os-release': Buffer.from('PRETTY_NAME="Debian"\n'),
        '/app/main.py': Buffer.alloc(30_000, 1),
        '/data/huge': Buffer.alloc(3 * MiB, 2),
        '/app/relative.py': Buffer.alloc(5000, 3),
      },
      { '/etc/os-release': '../usr/lib/os-release' },
    );
    const warmed: Array<[number, number]> = [];
    const stats = await prefetchLaunchFiles(
      file,
      {
        args: [
          '-v',
          '/etc/os-release',
          'app/relative.py',
          '--config=/app/main.py',
          '/app/main.py',
          '/data/huge',
          '/nowhere',
          '/app',
        ],
      },
      { maxFileBytes: 8 * MiB, warm: async (o, l) => void warmed.push([o, l]) },
    );
    const expected = [
      ...(await rangesOf(file, '/etc/os-release')),
      ...(await rangesOf(file, '/app/main.py')),
      ...(await rangesOf(file, '/data/huge', MiB)),
    ];
    const key = (r: readonly [number, number]) => `${r[0]}+${r[1]}`;
    expect(new Set(warmed.map(key))).toEqual(new Set(expected.map(key)));
    expect(stats.files).toBe(3);
  });

  it('takes at most four distinct absolute paths from the arguments', () => {
    expect(argFiles(['/a', 'b', '/a', '/c', '-x', '/d', '/e', '/f'])).toEqual(['/a', '/c', '/d', '/e']);
    expect(argFiles(['/', '', 'x/y', '/bad\0name'])).toEqual([]);
    expect(argFiles()).toEqual([]);
  });

  it('fetches at most maxFileBytes of a file, and stops when cancelled', async () => {
    const file = await buildFs({ '/data/big': Buffer.alloc(3 * MiB, 5), '/etc/passwd': Buffer.from('x\n') });
    const warmed: Array<[number, number]> = [];
    await prefetchLaunchFiles(
      file,
      { files: ['/data/big'] },
      { maxFileBytes: MiB, warm: async (o, l) => void warmed.push([o, l]) },
    );
    expect(warmed.reduce((a, [, l]) => a + l, 0)).toBe(MiB);
    expect(warmed).toEqual(await rangesOf(file, '/data/big', MiB));
    const none: unknown[] = [];
    const s = await prefetchLaunchFiles(
      file,
      { files: ['/data/big', '/etc/passwd'] },
      { maxFileBytes: MiB, cancelled: () => true, warm: async (o, l) => void none.push([o, l]) },
    );
    expect(none).toEqual([]);
    expect(s.files).toBe(0);
  });
});
