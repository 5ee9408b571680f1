import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2fsck } from '../../test/ext4-tools.js';
import { LocalFile } from '../blockfile/local.js';
import { Ext4, nameKey } from './fs.js';
import { mkfs } from './mkfs.js';
import { SparseMemoryFile } from './sparse-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-ext4-fs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MiB = 1024 ** 2;

async function readAll(fs: Ext4, path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of fs.readFile(path)) parts.push(c);
  return Buffer.concat(parts);
}

describe('reader on a filesystem made by mkfs.ext4 -d', () => {
  it('reads files, symlinks, hard links, xattrs and a large htree directory', async () => {
    const src = join(dir, 'src');
    await mkdir(join(src, 'many'), { recursive: true });
    for (let i = 0; i < 3000; i++) await writeFile(join(src, 'many', `entry-number-${i}`), `${i}`);
    await writeFile(join(src, 'data'), Buffer.alloc(3 * MiB + 123, 0x5a));
    execFileSync('sh', [
      '-c',
      `cd ${src} && ln -s data fast && ln -s ${'y'.repeat(100)} slow && ln data hard && python3 -c "import os; os.setxattr('data','user.k',b'\\x00v')"`,
    ]);
    const img = join(dir, 'mkfs-d.img');
    execFileSync('sh', [
      '-c',
      `truncate -s 1G ${img} && mkfs.ext4 -q -F -b 4096 -I 256 -O ^has_journal,^metadata_csum,^resize_inode,^orphan_file,^metadata_csum_seed -E root_owner=0:0 -d ${src} ${img} && (e2fsck -fyD ${img} >/dev/null 2>&1; true)`,
    ]);
    const f = await LocalFile.open(img);
    try {
      const fs = await Ext4.open(f);
      const many = await fs.readdir('/many');
      expect(many.length).toBe(3000);
      expect((await fs.inode((await fs.lookup('/many'))!)).flags & 0x1000).toBe(0x1000); // really an htree
      expect((await readAll(fs, '/many/entry-number-2999')).toString()).toBe('2999');
      const data = await readAll(fs, '/data');
      expect(data.length).toBe(3 * MiB + 123);
      expect(data.every((x) => x === 0x5a)).toBe(true);
      expect(await fs.readlink('/fast')).toBe('data');
      expect(await fs.readlink('/slow')).toBe('y'.repeat(100));
      const st = await fs.stat('/hard');
      expect(st.nlink).toBe(2);
      expect(Buffer.from(st.xattrs.get('user.k')!)).toEqual(Buffer.from([0, 0x76]));
      const part = new Uint8Array(10);
      expect(await fs.readIno(st.ino, part, 3 * MiB + 118)).toBe(5);
    } finally {
      await f.close();
    }
  });
});

describe('writer', () => {
  it('writes a > 4 GiB sparse file with a depth-2 extent tree, a big xattr block and grows/shrinks dirs', async () => {
    const f = new SparseMemoryFile(64 * 1024 ** 3);
    await mkfs(f, { time: 1700000000 });
    const fs = await Ext4.open(f);
    const w = await fs.createFile(2, 'huge', { mode: 0o600, uid: 70000, gid: 80000 });
    const blk = Buffer.alloc(4096, 1);
    for (let i = 0; i < 1500; i++) {
      blk.writeUInt32LE(i, 0);
      await w.write(blk);
      await w.skip(4096 * 700);
    }
    await w.end(5 * 1024 ** 3 + 17);
    const d = await fs.mkdir(2, 'grow');
    for (let i = 0; i < 2000; i++) await fs.mknod(d, `fifo-${i}`, 0o010600);
    await fs.setXattrs(d, new Map([['user.v', Buffer.alloc(2000, 9)]]));
    await fs.close();
    // Reopen, shrink the directory, check.
    const fs2 = await Ext4.open(f);
    for (let i = 0; i < 1990; i++) await fs2.unlink(d, nameKey(`fifo-${i}`));
    await fs2.close();
    const img = join(dir, 'huge.img');
    await f.saveTo(img);
    const r = await e2fsck(img);
    expect(r.problems, r.output).toEqual([]);
    expect(r.code).toBe(0);
    const fs3 = await Ext4.open(f);
    const st = await fs3.stat('/huge');
    expect(st).toMatchObject({ size: 5 * 1024 ** 3 + 17, uid: 70000, gid: 80000, mode: 0o100600 });
    const b = new Uint8Array(4);
    await fs3.readIno(st.ino, b, 1499 * 701 * 4096);
    expect(Buffer.from(b).readUInt32LE(0)).toBe(1499);
    await fs3.readIno(st.ino, b, 1499 * 701 * 4096 + 4096);
    expect(Buffer.from(b).readUInt32LE(0)).toBe(0);
    expect((await fs3.readdir('/grow')).length).toBe(10);
    expect((await fs3.stat('/grow')).xattrs.get('user.v')?.length).toBe(2000);
  });

  it('random operation sequences match a model and stay e2fsck-clean', async () => {
    type Op =
      | { op: 'file'; dir: number; name: number; size: number; seed: number }
      | { op: 'mkdir'; dir: number; name: number }
      | { op: 'link'; dir: number; name: number; target: number }
      | { op: 'symlink'; dir: number; name: number; len: number }
      | { op: 'unlink'; target: number }
      | { op: 'reopen' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant('file' as const),
        dir: fc.nat(),
        name: fc.nat(40),
        size: fc.oneof(fc.nat(10000), fc.nat(300000)),
        seed: fc.nat(255),
      }),
      fc.record({ op: fc.constant('mkdir' as const), dir: fc.nat(), name: fc.nat(40) }),
      fc.record({ op: fc.constant('link' as const), dir: fc.nat(), name: fc.nat(40), target: fc.nat() }),
      fc.record({
        op: fc.constant('symlink' as const),
        dir: fc.nat(),
        name: fc.nat(40),
        len: fc.integer({ min: 1, max: 200 }),
      }),
      fc.record({ op: fc.constant('unlink' as const), target: fc.nat() }),
      fc.constant({ op: 'reopen' as const }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 60 }), async (ops) => {
        const f = new SparseMemoryFile(256 * MiB);
        await mkfs(f, { size: 256 * MiB });
        let fs = await Ext4.open(f);
        // Model: path → content (file), 'dir', or {link: target}.
        const model = new Map<string, Buffer | 'dir' | { link: string }>();
        const dirs = () => ['', ...[...model].filter(([, v]) => v === 'dir').map(([k]) => k)].sort();
        const pick = <T>(a: T[], i: number) => a[i % a.length]!;
        for (const o of ops) {
          if (o.op === 'reopen') {
            await fs.close();
            fs = await Ext4.open(f);
            continue;
          }
          if (o.op === 'unlink') {
            const paths = [...model.keys()].sort();
            if (!paths.length) continue;
            const p = pick(paths, o.target);
            const i = p.lastIndexOf('/');
            await fs.unlink((await fs.lookup(`/${p.slice(0, Math.max(0, i))}`))!, nameKey(p.slice(i + 1)));
            for (const k of [...model.keys()]) if (k === p || k.startsWith(`${p}/`)) model.delete(k);
            continue;
          }
          const parent = pick(dirs(), o.dir);
          const path = parent ? `${parent}/n${o.name}` : `n${o.name}`;
          if (model.has(path)) continue;
          const pino = (await fs.lookup(`/${parent}`))!;
          if (o.op === 'file') {
            const data = Buffer.alloc(o.size);
            for (let i = 0; i < o.size; i += 997) data[i] = (o.seed + i) & 0xff;
            const w = await fs.createFile(pino, `n${o.name}`);
            await w.write(data);
            await w.end();
            model.set(path, data);
          } else if (o.op === 'mkdir') {
            await fs.mkdir(pino, `n${o.name}`);
            model.set(path, 'dir');
          } else if (o.op === 'symlink') {
            const t = 'z'.repeat(o.len);
            await fs.symlink(pino, `n${o.name}`, Buffer.from(t));
            model.set(path, { link: t });
          } else {
            const files = [...model]
              .filter(([, v]) => Buffer.isBuffer(v))
              .map(([k]) => k)
              .sort();
            if (!files.length) continue;
            const t = pick(files, o.target);
            await fs.link(pino, `n${o.name}`, (await fs.lookup(`/${t}`))!);
            model.set(path, model.get(t)!);
          }
        }
        await fs.close();
        fs = await Ext4.open(f);
        for (const [p, v] of model) {
          const st = await fs.stat(`/${p}`);
          if (v === 'dir') expect(st.kind).toBe('dir');
          else if (Buffer.isBuffer(v)) expect((await readAll(fs, `/${p}`)).equals(v)).toBe(true);
          else expect(await fs.readlink(`/${p}`)).toBe(v.link);
        }
        const top = (await fs.readdir('/')).map((e) => e.name).filter((n) => n !== 'lost+found');
        expect(top.sort()).toEqual([...model.keys()].filter((k) => !k.includes('/')).sort());
        const img = join(dir, `model-${run++}.img`);
        await f.saveTo(img);
        const r = await e2fsck(img);
        await rm(img);
        expect(r.problems, r.output).toEqual([]);
        expect(r.code).toBe(0);
      }),
      { numRuns: 12 },
    );
  });
});
