import { describe, expect, it } from 'vitest';
import { testRandom } from '../../test/seed.js';
import type { BlockFile, PrefetchableBlockFile } from '../blockfile/blockfile.js';
import { MemoryFile } from '../blockfile/memory.js';
import { Ext4, mkfs, SparseMemoryFile } from '../ext4/index.js';
import { decodeGroupDesc } from '../ext4/layout.js';
import { Ext4Prefetch, LAUNCH_FILE_BYTES } from './ext4-prefetch.js';
import { coalesce, decodeExtentNode, ext4Geometry, MAX_GDT_BYTES, usedInodeTables } from './ext4-prefetch-plan.js';

const MiB = 1 << 20;

/** Records every read and prefetch (both in `reads`: what was fetched), prefetches also in `warmed`. */
class LoggingFile implements PrefetchableBlockFile {
  readonly reads: Array<[offset: number, length: number]> = [];
  readonly warmed: Array<[offset: number, length: number]> = [];
  constructor(readonly inner: BlockFile) {}
  get name() {
    return this.inner.name;
  }
  get size() {
    return this.inner.size;
  }
  read(buf: Uint8Array, offset: number) {
    this.reads.push([offset, buf.length]);
    return this.inner.read(buf, offset);
  }
  async prefetch(offset: number, length: number) {
    const r: [number, number] = [offset, length];
    this.reads.push(r);
    this.warmed.push(r);
  }
  close() {
    return this.inner.close();
  }
}

const covered = (reads: ReadonlyArray<[number, number]>, offset: number, length: number) => {
  // Whole ranges only: a read is covered when the union of earlier reads holds every byte of it.
  let at = offset;
  const end = offset + length;
  for (const [o, l] of [...reads].sort((a, b) => a[0] - b[0])) {
    if (o <= at && o + l > at) at = o + l;
    if (at >= end) return true;
  }
  return at >= end;
};

/** A 1 GiB filesystem with nested directories, files of several sizes and one directory of 2000 entries. */
async function buildFs(): Promise<{ file: SparseMemoryFile; files: Map<string, number> }> {
  const file = new SparseMemoryFile(1024 * MiB);
  await mkfs(file, { size: 1024 * MiB, time: 1700000000 });
  const fs = await Ext4.open(file);
  const files = new Map<string, number>();
  let dir = 2;
  for (const name of ['usr', 'lib', 'x86_64-linux-gnu']) dir = await fs.mkdir(dir, name);
  for (const [name, size] of [
    ['libc.so.6', 1_900_000],
    ['ld.so', 210_000],
    ['big.bin', 3 * MiB],
    ['tiny', 100],
  ] as const) {
    const w = await fs.createFile(dir, name);
    await w.write(Buffer.alloc(size, name.length));
    await w.end();
    files.set(name, size);
  }
  const many = await fs.mkdir(2, 'many');
  await fs.close();
  // Grown in rounds with file data between them: its blocks form more extents than an inode holds,
  // so its extent tree has an index block.
  for (let round = 0; round < 8; round++) {
    const fs2 = await Ext4.open(file);
    for (let i = 0; i < 300; i++) await fs2.mknod(many, `entry-with-a-longer-name-${round}-${i}`, 0o010600);
    const w = await fs2.createFile(2, `spacer-${round}`);
    await w.write(Buffer.alloc(8192, 1));
    await w.end();
    await fs2.close();
  }
  return { file, files };
}

describe('ext4 prefetch', () => {
  it('reads what a mount and a walk of every directory read, in a few large reads', async () => {
    const { file } = await buildFs();
    const log = new LoggingFile(file);
    const p = new Ext4Prefetch(log, { writableMount: true });
    const s = await p.done;
    expect(s).toMatchObject({ failed: 0, cancelled: false, finished: true });
    expect(s.dirs).toBeGreaterThanOrEqual(5);
    // Three dependent steps of coalesced reads (plus index levels of big directories), not one a block.
    expect(log.reads.length).toBeLessThan(40);
    const prefetched = [...log.reads];
    // Every read a full walk makes (superblock, descriptors, inodes, extent trees, directory blocks)
    // is one the prefetch already made.
    const check = new LoggingFile(file);
    const fs = await Ext4.open(check);
    const walk = async (path: string): Promise<number> => {
      let n = 0;
      for (const e of await fs.readdir(path)) {
        const child = `${path === '/' ? '' : path}/${e.name}`;
        await fs.stat(child);
        n++;
        if (e.kind === 'dir') n += await walk(child);
      }
      return n;
    };
    expect(await walk('/')).toBeGreaterThan(2000);
    // The big directory's extent tree has index blocks: the step that walks them is exercised.
    const many = await fs.inode((await fs.lookup('/many'))!);
    expect(decodeExtentNode(many.iblock)?.depth).toBeGreaterThan(0);
    const missed = check.reads.filter(([o, l]) => !covered(prefetched, o, l));
    expect(missed).toEqual([]);
    // Directory blocks are only fetched (the kernel decodes them), not read: only the superblock,
    // descriptors, inode tables and the big directory's index blocks are read here.
    const dirBlocks = check.reads.filter(
      ([o, l]) =>
        !covered(
          log.reads.filter((r) => !log.warmed.includes(r)),
          o,
          l,
        ),
    );
    expect(dirBlocks.length).toBeGreaterThan(0);
    expect(dirBlocks.every(([o, l]) => covered(log.warmed, o, l))).toBe(true);
    // Our mkfs stores s_overhead_clusters, so a read-write mount rewrites no backup superblock
    // (test/integration/ext4-overhead.test.ts): none is read.
    for (const g of [1, 3, 5, 7]) expect(covered(prefetched, g * 32768 * 4096, 4096), `group ${g}`).toBe(false);
  });

  it('reads the backup superblocks for a read-write mount when the overhead is left to the kernel', async () => {
    const { file } = await buildFs();
    // s_overhead_clusters (superblock offset 0x248) zeroed: the kernel computes it at mount and
    // writes it into the primary and every backup superblock (groups 1, 3, 5, 7 of 8).
    await file.write(new Uint8Array(4), 1024 + 0x248);
    for (const writableMount of [true, false]) {
      const log = new LoggingFile(file);
      const s = await new Ext4Prefetch(log, { writableMount }).done;
      expect(s).toMatchObject({ failed: 0, finished: true });
      for (const g of [1, 3, 5, 7]) {
        expect(covered(log.reads, g * 32768 * 4096, 4096), `group ${g}, rw ${writableMount}`).toBe(writableMount);
      }
    }
  });

  it('fetches launch files whole up to LAUNCH_FILE_BYTES, beyond the file readahead bound', async () => {
    const { file } = await buildFs();
    const fs = await Ext4.open(file);
    const ino = (await fs.lookup('/usr/lib/x86_64-linux-gnu/big.bin'))!;
    const [e] = await fs.extents(ino);
    const big = { offset: e!.pblk * 4096, length: e!.len * 4096 };
    expect(big.length).toBeGreaterThan(2 * MiB);
    expect(big.length).toBeLessThanOrEqual(LAUNCH_FILE_BYTES);
    const log = new LoggingFile(file);
    const p = new Ext4Prefetch(log, { maxFileBytes: 2 * MiB });
    p.launch({ files: ['/usr/lib/x86_64-linux-gnu/big.bin'] });
    // launch() runs in the background; cancel() would stop it before it starts.
    for (let i = 0; i < 400 && p.stats().launchFiles === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const s = await p.cancel();
    expect(log.warmed).toContainEqual([big.offset, big.length]);
    expect(s.launchBytes).toBe(big.length);
  });

  it("a device's later launches look their files up with the first one's reader: no metadata read again", async () => {
    const { file } = await buildFs();
    const log = new LoggingFile(file);
    const p = new Ext4Prefetch(log);
    await p.done;
    const launched = async (n: number) => {
      for (let i = 0; i < 400 && p.stats().launchFiles < n; i++) await new Promise((r) => setTimeout(r, 5));
      return p.stats();
    };
    const fetched: string[] = [];
    const files = ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/tiny'];
    p.launch({ files }, (f) => fetched.push(f));
    const first = await launched(2);
    const readsBefore = log.reads.length - log.warmed.length;
    p.launch({ files }, (f) => fetched.push(f));
    const second = await launched(4);
    await p.cancel();
    // The second launch warmed its files, and read no superblock, inode or directory block again.
    expect(log.reads.length - log.warmed.length).toBe(readsBefore);
    expect(second).toMatchObject({ launchFiles: 4, launchBytes: 2 * first.launchBytes });
    expect(fetched.sort()).toEqual([files[0], files[0], files[1], files[1]]);
  });

  it('reads the rest of a file extent when part of it is read, once, and not for files above the bound', async () => {
    const { file } = await buildFs();
    const fs = await Ext4.open(file);
    const extentOf = async (name: string) => {
      const ino = (await fs.lookup(`/usr/lib/x86_64-linux-gnu/${name}`))!;
      const [e] = await fs.extents(ino);
      return { offset: e!.pblk * 4096, length: e!.len * 4096 };
    };
    const libc = await extentOf('libc.so.6');
    const big = await extentOf('big.bin');
    const log = new LoggingFile(file);
    const p = new Ext4Prefetch(log, {
      maxFileBytes: 2 * MiB,
      neighbourFiles: 0,
      neighbourFilesBefore: 0,
      pyImports: false,
    });
    await p.done;
    const before = log.reads.length;
    expect(p.fileExtentAt(libc.offset + 5000)).toMatchObject(libc);
    const at = libc.offset + 64 * 1024;
    p.willRead(at, 16384);
    p.willRead(at + 16384, 16384); // the same extent again: nothing more
    p.willRead(big.offset, 4096); // 3 MiB > the bound
    // The readahead starts once the read's own fetches have (on the next turn of the event loop).
    expect(log.reads.length).toBe(before);
    await new Promise((r) => setImmediate(r));
    const s = await p.cancel();
    const expected = [
      [libc.offset, 64 * 1024],
      [at + 16384, libc.offset + libc.length - (at + 16384)],
    ];
    expect(log.reads.slice(before).sort((a, b) => a[0] - b[0])).toEqual(expected);
    // Fetched into the cache, not decoded: the file's bytes are the kernel's to read.
    expect(log.warmed.slice(-2).sort((a, b) => a[0] - b[0])).toEqual(expected);
    expect(s.fileReadaheads).toBe(2);
    expect(s.fileReadaheadBytes).toBe(libc.length - 16384);
    // Cancelled: no more readahead.
    p.willRead(big.offset + 1, 1);
    expect(log.reads.length).toBe(before + 2);
  });

  it("runs a file's readahead on over the small files laid out after it, within the bounds", async () => {
    const file = new SparseMemoryFile(256 * MiB);
    await mkfs(file, { size: 256 * MiB, time: 1700000000 });
    const fs = await Ext4.open(file);
    const dir = await fs.mkdir(2, 'pycache');
    const sizes = { a: 10_000, b: 20_000, c: 30_000, d: 5_000, e: 100_000, f: 4_000 };
    for (const [name, size] of Object.entries(sizes)) {
      const w = await fs.createFile(dir, name);
      await w.write(Buffer.alloc(size, 7));
      await w.end();
    }
    const at: Record<string, { offset: number; length: number }> = {};
    for (const name of Object.keys(sizes)) {
      const [e] = await fs.extents((await fs.lookup(`/pycache/${name}`))!);
      at[name] = { offset: e!.pblk * 4096, length: e!.len * 4096 };
    }
    await fs.close();
    const end = (n: string) => at[n]!.offset + at[n]!.length;
    // Laid out one after another, as the converter writes a tar's files.
    for (const [x, y] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'd'],
      ['d', 'e'],
      ['e', 'f'],
    ] as const)
      expect(at[y]!.offset).toBe(end(x));
    const run = async (
      opts: {
        neighbourFiles?: number;
        neighbourFilesBefore?: number;
        maxNeighbourBytes?: number;
        roundTripMs?: () => number | undefined;
      },
      reads: string[],
    ) => {
      const log = new LoggingFile(file);
      const p = new Ext4Prefetch(log, {
        neighbourFilesBefore: 0,
        maxNeighbourFileBytes: 64 * 1024,
        maxNeighbourBytes: 128 * 1024,
        // The file starts read here would each cost a 17-byte .pyc header probe read.
        pyImports: false,
        ...opts,
      });
      await p.done;
      const before = log.reads.length;
      for (const n of reads) p.willRead(at[n]!.offset, 4096);
      await new Promise((r) => setImmediate(r));
      const s = await p.cancel();
      return { warmed: log.reads.slice(before), s };
    };
    // b, c and d follow a; e is above the per-file bound, so the run stops there; c is read ahead already.
    const one = await run({ neighbourFiles: 4 }, ['a', 'c']);
    expect(one.warmed).toEqual([[at.a!.offset + 4096, end('d') - at.a!.offset - 4096]]);
    expect(one.s).toMatchObject({ neighbourFiles: 3, neighbourBytes: end('d') - at.b!.offset });
    // At most this many files.
    expect((await run({ neighbourFiles: 1 }, ['a'])).warmed).toEqual([
      [at.a!.offset + 4096, end('b') - at.a!.offset - 4096],
    ]);
    // Within the byte bound: c (32 KiB) does not fit after b (20 KiB) in 40 KiB.
    expect((await run({ neighbourFiles: 4, maxNeighbourBytes: 40 * 1024 }, ['a'])).warmed).toEqual([
      [at.a!.offset + 4096, end('b') - at.a!.offset - 4096],
    ]);
    // The files before it: read in d, the run goes back over c, b and a (in one range up to d's read).
    const back = await run({ neighbourFiles: 0, neighbourFilesBefore: 3 }, ['d']);
    expect(back.warmed).toEqual([
      [at.a!.offset, at.d!.offset - at.a!.offset],
      [at.d!.offset + 4096, at.d!.length - 4096],
    ]);
    expect(back.s.neighbourFiles).toBe(3);
    // Off: the file's own rest only.
    const own = [[at.a!.offset + 4096, at.a!.length - 4096]];
    expect((await run({ neighbourFiles: 0 }, ['a'])).warmed).toEqual(own);
    // Only where a round trip costs (NEIGHBOUR_MIN_ROUND_TRIP_MS): not on a quick link, nor before any fetch.
    expect((await run({ neighbourFiles: 4, roundTripMs: () => 4 }, ['a'])).warmed).toEqual(own);
    expect((await run({ neighbourFiles: 4, roundTripMs: () => undefined }, ['a'])).warmed).toEqual(own);
    expect((await run({ neighbourFiles: 4, roundTripMs: () => 20 }, ['a'])).warmed).toEqual(one.warmed.slice(0, 1));
  });

  it('a device that is not ext4 costs one probe read and no error', async () => {
    const log = new LoggingFile(new MemoryFile(new Uint8Array(4 * MiB).fill(0x5a), 'raw'));
    const messages: string[] = [];
    const p = new Ext4Prefetch(log, { log: (m) => messages.push(m) });
    expect(await p.done).toMatchObject({ reads: 1, failed: 0, finished: true });
    expect(messages).toEqual([]);
    p.willRead(0, 4096);
    expect(log.reads.length).toBe(1);
  });

  it('a failing device stops the prefetch with one logged message', async () => {
    const failing: BlockFile = {
      name: 'bad',
      size: MiB,
      read: async () => {
        throw new Error('injected failure');
      },
      close: async () => {},
    };
    const messages: string[] = [];
    const s = await new Ext4Prefetch(failing, { log: (m) => messages.push(m) }).done;
    expect(s).toMatchObject({ failed: 1, finished: true });
    expect(messages).toEqual([expect.stringMatching(/bad.*injected failure/)]);
  });
});

describe('ext4 prefetch plan', () => {
  it('bounds what a hostile superblock asks for', async () => {
    const { file } = await buildFs();
    const sb = new Uint8Array(1024);
    await file.read(sb, 1024);
    const dv = new DataView(sb.buffer);
    dv.setUint32(0x4, 0xffffffff, true); // blocks count lo
    dv.setUint32(0x150, 0xffff, true); // blocks count hi: 2^48 blocks
    dv.setUint32(0x28, 0x7fffffff, true); // inodes per group
    const geo = ext4Geometry(sb)!;
    expect(geo.headBytes).toBeLessThanOrEqual(MAX_GDT_BYTES + 2 * 4096);
    expect(geo.backupGroups.length).toBeLessThanOrEqual(64);
    const head = new Uint8Array(geo.headBytes);
    await file.read(head, 0);
    const tables = usedInodeTables(geo, head, 8 * MiB);
    expect(tables.reduce((a, t) => a + t.length, 0)).toBeLessThanOrEqual(8 * MiB);
    dv.setUint16(0x38, 0, true); // no magic
    expect(ext4Geometry(sb)).toBeUndefined();
  });

  it('finds the used inode tables as decodeGroupDesc reads the descriptors (random tables, 32- and 64-byte)', () => {
    const rand = testRandom(12);
    for (let round = 0; round < 200; round++) {
      const descSize = rand() < 0.5 ? 32 : 64;
      const groupCount = 1 + Math.floor(rand() * 300);
      const inodesPerGroup = [8192, 65535, 70000][Math.floor(rand() * 3)]!;
      const gdtStart = 4096;
      const head = new Uint8Array(gdtStart + groupCount * descSize);
      for (let i = gdtStart; i < head.length; i++) head[i] = rand() < 0.7 ? 0 : Math.floor(rand() * 256);
      const geo = {
        blockSize: 4096,
        headBytes: head.length,
        groupCount,
        inodesPerGroup,
        inodeSize: 256,
        backupGroups: [],
        blocksPerGroup: 32768,
        firstDataBlock: 0,
        gdtStart,
        descSize,
        overheadClusters: 1,
      };
      const budget = Math.floor(rand() * 64) * 4096 + 1;
      const want: { offset: number; length: number; firstIno: number }[] = [];
      let left = budget;
      for (let g = 0; g < groupCount && left > 0; g++) {
        const d = decodeGroupDesc(head, gdtStart + g * descSize, descSize);
        const used = inodesPerGroup - Math.min(d.freeInodes, inodesPerGroup);
        if (used <= 0 || d.inodeTable === 0) continue;
        const bytes = Math.min(Math.ceil((used * 256) / 4096) * 4096, left);
        want.push({ offset: d.inodeTable * 4096, length: bytes, firstIno: g * inodesPerGroup + 1 });
        left -= bytes;
      }
      expect(usedInodeTables(geo, head, budget)).toEqual(want);
    }
  });

  it('coalesces near ranges up to a size and a total', () => {
    const r = (offset: number, length: number) => ({ offset, length });
    expect(coalesce([r(100, 10), r(0, 10), r(15, 5), r(50, 10)], 5, 1000, 1000)).toEqual([
      r(0, 20),
      r(50, 10),
      r(100, 10),
    ]);
    expect(coalesce([r(0, 10), r(10, 10), r(20, 10)], 0, 20, 1000)).toEqual([r(0, 20), r(20, 10)]);
    expect(coalesce([r(0, 10), r(100, 10), r(200, 10)], 0, 1000, 15)).toEqual([r(0, 10), r(100, 10)]);
  });
});
