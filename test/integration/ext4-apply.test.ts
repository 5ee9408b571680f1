// Applies real GNU tar layers onto our ext4 and checks the result with the real e2fsprogs:
// e2fsck -fn fully clean, and the `debugfs rdump` tree equal to `tar -xpf` of the same layers.

import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { LocalFile } from '../../src/blockfile/local.js';
import { DadiError } from '../../src/errors.js';
import { applyLayer } from '../../src/ext4/apply.js';
import { Ext4 } from '../../src/ext4/fs.js';
import { mkfs } from '../../src/ext4/mkfs.js';
import { SparseMemoryFile } from '../../src/ext4/sparse-file.js';
import { describeExt4, describeTree, e2fsck, rdump, type TreeEntry } from '../ext4-tools.js';

let dir: string;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe' });
const TAR = 'tar --xattrs --xattrs-include="*" --numeric-owner';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-ext4-apply-'));
  // Layer 1: every entry type, xattrs, long names, a sparse-ish and a multi-extent file.
  sh(`mkdir -p l1/a/b/c l1/d l1/opq/keep l1/opq/gone l1/rm/deep/er l1/swap l1/swap2
    echo hi > l1/a/f && ln l1/a/f l1/a/hl && ln -s ../a/f l1/d/sl && ln -s /nowhere/${'x'.repeat(120)} l1/d/longsl
    mknod l1/d/null c 1 3 && mknod l1/d/blk b 259 70000 && mkfifo l1/d/fifo
    head -c 300000 /dev/urandom > l1/big && echo x > l1/opq/gone/f && echo y > l1/opq/keep/f && echo z > l1/rm/deep/er/f
    echo s > l1/swap/f && echo t > l1/swap2
    chown 100000:200000 l1/a/f && chmod 4755 l1/a/f && chmod 1777 l1/a/b && chown -h 1000:1000 l1/d/sl
    touch -h -d '2023-01-02 03:04:05.123456789' l1/a/f l1/d/sl l1/a/b`);
  const n = 'n'.repeat(250);
  await mkdir(join(dir, 'l1/long', n, n), { recursive: true });
  await writeFile(join(dir, 'l1/long', n, n, n), 'deep');
  const py = `import os
os.setxattr('l1/a/f','user.test',b'\\x00\\x01\\xff')
os.setxattr('l1/big','security.capability',bytes([1,0,0,2,0,0x20,0,0]+[0]*12))
os.setxattr('l1/d','trusted.big',b'z'*600)
f=open('l1/sparse','wb'); f.seek(8192); f.write(os.urandom(5000)); f.seek(20*1024*1024); f.write(b'end'); f.close()`;
  execFileSync('python3', ['-c', py], { cwd: dir });
  sh(`${TAR} -cpf l1.tar -C l1 .`);
  // Layer 2: whiteouts, an opaque dir, a dir replaced by a file and a file by a dir.
  sh(`mkdir -p l2/opq/new l2/a l2/swap2 && touch l2/rm/.wh.deep 2>/dev/null || (mkdir -p l2/rm && touch l2/rm/.wh.deep)
    touch l2/opq/.wh..wh..opq && echo n > l2/opq/new/f && touch l2/a/.wh.hl && echo now-a-file > l2/swap
    echo inner > l2/swap2/f && touch l2/.wh.missing`);
  sh(`${TAR} -cpf l2.tar -C l2 .`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function image(layers: string[], compressWith?: 'gzip' | 'zstd'): Promise<string> {
  const f = new SparseMemoryFile(64 * 1024 ** 3);
  await mkfs(f);
  for (const l of layers) {
    const fs = await Ext4.open(f);
    if (compressWith) {
      const { readFile } = await import('node:fs/promises');
      const raw = await readFile(join(dir, l));
      const packed = compressWith === 'gzip' ? gzipSync(raw) : compress(raw);
      await applyLayer(fs, Readable.from([packed]));
    } else await applyLayer(fs, createReadStream(join(dir, l)));
    await fs.close();
  }
  const img = join(dir, `img-${layers.join('-')}-${compressWith ?? 'plain'}.img`);
  await f.saveTo(img);
  return img;
}

/** Extract layers the way a container runtime would (whiteouts applied by hand for tar). */
function reference(layers: string[], out: string): void {
  sh(`rm -rf ${out} && mkdir ${out}`);
  for (const l of layers) {
    if (l === 'l2.tar') sh(`cd ${out} && rm -rf rm/deep opq/keep opq/gone a/hl swap swap2`);
    sh(`${TAR} -xpf ${l} -C ${out} --exclude='*.wh.*'`);
  }
}

/**
 * e2fsprogs' view (rdump: content, types, link targets; it drops setuid/sticky bits and symlink
 * owners, so those are masked) and our reader's full view must both equal `tar -x` of the layers.
 */
async function compareTrees(img: string, layers: string[]): Promise<void> {
  const out = join(dir, 'rdump');
  const ref = join(dir, 'ref');
  sh(`rm -rf ${out} && mkdir ${out}`);
  await rdump(img, out);
  reference(layers, ref);
  const want = await describeTree(ref);
  const f = await LocalFile.open(img);
  try {
    expect(await describeExt4(await Ext4.open(f))).toEqual(want);
  } finally {
    await f.close();
  }
  const masked: Record<string, TreeEntry> = {};
  for (const [k, v] of Object.entries(want)) {
    if (v.type === 'other') continue; // rdump does not recreate device nodes or fifos
    masked[k] = { ...v, mode: v.mode & 0o777, ...(v.type === 'symlink' ? { uid: 0, gid: 0 } : {}) };
  }
  const got = await describeTree(out);
  for (const v of Object.values(got)) v.mode &= 0o777;
  expect(got).toEqual(masked);
}

describe('ext4 OCI layer apply', () => {
  it('mkfs gives a clean 64 GiB filesystem', async () => {
    const img = await image([]);
    const r = await e2fsck(img);
    expect(r.problems).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('applies a layer: e2fsck clean, tree equals tar -x', async () => {
    const img = await image(['l1.tar']);
    const r = await e2fsck(img);
    expect(r.problems, r.output).toEqual([]);
    expect(r.code).toBe(0);
    await compareTrees(img, ['l1.tar']);
    const dump = (p: string) => execFileSync('debugfs', ['-R', `stat ${p}`, img], { stdio: 'pipe' }).toString();
    expect(dump('/d/null')).toMatch(/Type: character special[\s\S]*Device major\/minor number: 01:03/);
    expect(dump('/d/blk')).toMatch(/Device major\/minor number: 259:70000/);
    expect(dump('/d/fifo')).toMatch(/Type: FIFO/);
    expect(dump('/a/f')).toMatch(/mtime: 0x63b249a5:1d6f3454/);
    expect(dump('/a/f')).toMatch(/user\.test \(3\) = 00 01 ff/);
    expect(dump('/big')).toMatch(/security\.capability \(20\)/);
    expect(dump('/d')).toMatch(/trusted\.big \(600\)/);
  });

  it('applies a second layer with whiteouts and opaque dirs', async () => {
    const img = await image(['l1.tar', 'l2.tar']);
    const r = await e2fsck(img);
    expect(r.problems, r.output).toEqual([]);
    await compareTrees(img, ['l1.tar', 'l2.tar']);
  });

  it('reads gzip and zstd layers', async () => {
    for (const c of ['gzip', 'zstd'] as const) {
      const img = await image(['l1.tar'], c);
      expect((await e2fsck(img)).problems).toEqual([]);
      await compareTrees(img, ['l1.tar']);
    }
  });

  it('our reader reads what we wrote', async () => {
    const f = new SparseMemoryFile(64 * 1024 ** 3);
    await mkfs(f);
    const w = await Ext4.open(f);
    await applyLayer(w, createReadStream(join(dir, 'l1.tar')));
    await w.close();
    const fs = await Ext4.open(f);
    const st = await fs.stat('/a/f');
    expect(st).toMatchObject({ kind: 'file', mode: 0o104755, uid: 100000, gid: 200000, size: 3, nlink: 2 });
    expect(st.mtime).toEqual({ sec: 1672628645, nsec: 123456789 });
    expect(Buffer.from(st.xattrs.get('user.test')!)).toEqual(Buffer.from([0, 1, 0xff]));
    expect((await fs.stat('/d/blk')).rdev).toEqual({ major: 259, minor: 70000 });
    expect(await fs.readlink('/d/sl')).toBe('../a/f');
    const chunks: Uint8Array[] = [];
    for await (const c of fs.readFile('/d/sl')) chunks.push(c);
    expect(Buffer.concat(chunks).toString()).toBe('hi\n');
    const names = (await fs.readdir('/d')).map((e) => e.name).sort();
    expect(names).toEqual(['blk', 'fifo', 'longsl', 'null', 'sl']);
  });
});

describe('hostile layers', () => {
  const apply = async (tar: Uint8Array) => {
    const f = new SparseMemoryFile(256 * 1024 ** 2);
    await mkfs(f, { size: 256 * 1024 ** 2 });
    const fs = await Ext4.open(f);
    return applyLayer(fs, Readable.from([tar]), { name: 'evil.tar' });
  };
  const header = (name: string, size: number, type = '0', sizeField?: Uint8Array): Buffer => {
    const h = Buffer.alloc(512);
    h.write(name, 0);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    if (sizeField) h.set(sizeField, 124);
    else h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write(type, 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    return h;
  };
  const expectError = async (tar: Uint8Array, re: RegExp) => {
    const err = await apply(tar).catch((e) => e);
    expect(err).toBeInstanceOf(DadiError);
    expect(String(err.message)).toMatch(re);
  };

  it('rejects path traversal and absolute paths, naming the entry', async () => {
    await expectError(Buffer.concat([header('../etc/passwd', 0), Buffer.alloc(1024)]), /"\.\.\/etc\/passwd".*\.\./);
    await expectError(Buffer.concat([header('/etc/passwd', 0), Buffer.alloc(1024)]), /"\/etc\/passwd".*absolute/);
    await expectError(Buffer.concat([header('a/../../x', 0), Buffer.alloc(1024)]), /"a\/\.\.\/\.\.\/x"/);
  });

  it('rejects a huge size without allocating, truncation and bad checksums', async () => {
    const huge = Buffer.alloc(12);
    huge[0] = 0x80;
    huge.fill(0x7f, 4);
    await expectError(header('big', 0, '0', huge), /evil\.tar/);
    await expectError(Buffer.concat([header('f', 1 << 30), Buffer.alloc(512)]), /"f".*(exceeds free space|truncated)/);
    await expectError(Buffer.concat([header('f', 100000), Buffer.alloc(512)]), /"f".*truncated/);
    const bad = header('f', 0);
    bad[0] = 0x67;
    await expectError(Buffer.concat([bad, Buffer.alloc(1024)]), /checksum/);
    await expectError(header('f', 0).subarray(0, 300), /truncated header/);
    await expectError(
      Buffer.concat([header('p', 1 << 24, 'x'), Buffer.alloc(512)]),
      /PAX header of 16777216 bytes is too large/,
    );
  });
});
