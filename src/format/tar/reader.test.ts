import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tarOf } from '../../../test/tar-build.js';
import { parsePaxRecords } from './header.js';
import { readTar } from './reader.js';

async function entries(tar: Uint8Array, chunk = 777) {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < tar.length; i += chunk) chunks.push(tar.subarray(i, i + chunk));
  const out = [];
  for await (const e of readTar(
    (async function* () {
      yield* chunks;
    })(),
    't.tar',
  )) {
    const parts: Uint8Array[] = [];
    for await (const c of e.data()) parts.push(c);
    out.push({ ...e, body: Buffer.concat(parts) });
  }
  return out;
}

describe('readTar', () => {
  it('takes size, path, linkpath, uid, gid, mtime and device numbers from PAX records over the header', async () => {
    // GNU tar writes size 0 in the ustar field when the real size is in a PAX record (files >= 8 GiB).
    const data = Buffer.from('x'.repeat(700));
    const tar = tarOf([
      {
        name: 'f',
        type: '0',
        size: 0,
        data,
        pax: { size: '700', uid: '3000000', gid: '7', mtime: '5.5', path: 'p/long' },
      },
      { name: 'l', type: '2', linkname: 'short', pax: { linkpath: 'a'.repeat(300) } },
      { name: 'c', type: '3', devmajor: 1, pax: { 'SCHILY.devmajor': '300', 'SCHILY.devminor': '70000' } },
      { name: 'after', type: '0', data: Buffer.from('ok') },
    ]);
    const es = await entries(tar);
    expect(es.map((e) => Buffer.from(e.path).toString())).toEqual(['p/long', 'l', 'c', 'after']);
    expect(es[0]).toMatchObject({ size: 700, uid: 3000000, gid: 7, mtime: { sec: 5, nsec: 500000000 } });
    expect(es[0]!.body.equals(data)).toBe(true);
    expect(Buffer.from(es[1]!.linkpath).toString()).toBe('a'.repeat(300));
    expect([es[2]!.devmajor, es[2]!.devminor]).toEqual([300, 70000]);
    expect(es[3]!.body.toString()).toBe('ok');
  });

  it('names the stream and shows the first bytes in hex when it is not a tar', async () => {
    const junk = Buffer.alloc(1024, 0x8f);
    junk[0] = 0x01;
    await expect(entries(junk)).rejects.toThrow(/^t\.tar: not a tar archive: .*starts with 01 8f 8f/);
  });

  it('keeps PAX values as raw bytes', () => {
    const rec = Buffer.concat([
      Buffer.from('27 SCHILY.xattr.user.a='),
      Buffer.from([0xff, 0x00, 0x80]),
      Buffer.from('\n'),
    ]);
    expect(Buffer.from(parsePaxRecords(rec).get('SCHILY.xattr.user.a')!)).toEqual(Buffer.from([0xff, 0, 0x80]));
  });

  it('reads GNU long names, PAX paths, times and big numbers from real tar output', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-tar-'));
    try {
      const long = 'd'.repeat(200);
      execFileSync('sh', [
        '-c',
        `cd ${dir} && mkdir -p src/${long} && echo hello > src/${long}/f && ln -s ${'t'.repeat(150)} src/l && chown 3000000:4000000 src/${long}/f && touch -d '2001-02-03 04:05:06.5' src/${long}/f`,
      ]);
      execFileSync('tar', [
        '--format=gnu',
        '--numeric-owner',
        '-cf',
        join(dir, 'gnu.tar'),
        '-C',
        join(dir, 'src'),
        '.',
      ]);
      execFileSync('tar', [
        '--format=posix',
        '--numeric-owner',
        '-cf',
        join(dir, 'pax.tar'),
        '-C',
        join(dir, 'src'),
        '.',
      ]);
      for (const t of ['gnu.tar', 'pax.tar']) {
        const es = await entries(await readFile(join(dir, t)));
        const f = es.find((e) => Buffer.from(e.path).toString().endsWith('/f'))!;
        expect(Buffer.from(f.path).toString()).toBe(`./${long}/f`);
        expect(f.body.toString()).toBe('hello\n');
        expect([f.uid, f.gid]).toEqual([3000000, 4000000]);
        expect(f.mtime.sec).toBe(981173106);
        if (t === 'pax.tar') expect(f.mtime.nsec).toBe(500000000);
        const l = es.find((e) => e.kind === 'symlink')!;
        expect(Buffer.from(l.linkpath).toString()).toBe('t'.repeat(150));
      }
      await writeFile(join(dir, 'x'), '');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('turns GNU tar ACL text records into ACL xattrs unless the xattr form is there', async () => {
    const exact = Buffer.from('0200000001000700ffffffff04000500ffffffff20000500ffffffff', 'hex');
    const tar = tarOf([
      {
        name: 'a',
        type: '5',
        pax: { 'SCHILY.acl.access': 'user::rwx\nuser:7:r--\ngroup::r-x\nmask::r-x\nother::r-x\n' },
      },
      {
        name: 'b',
        type: '5',
        pax: { 'SCHILY.acl.access': 'user::rwx\ngroup::r-x\nother::r-x\n', 'SCHILY.acl.default': 'user::rwx\n' },
      },
      { name: 'c', type: '0', data: Buffer.alloc(0), pax: { 'SCHILY.acl.access': 'user:nobody:r--\n' } },
    ]);
    const [a, b] = await entries(tar.subarray(0, 3 * 1024));
    expect(Buffer.from(a!.xattrs.get('system.posix_acl_access')!).toString('hex')).toBe(
      '0200000001000700ffffffff020004000700000004000500ffffffff10000500ffffffff20000500ffffffff',
    );
    expect(Buffer.from(b!.xattrs.get('system.posix_acl_access')!)).toEqual(exact);
    expect(b!.xattrs.has('system.posix_acl_default')).toBe(true);
    await expect(entries(tar)).rejects.toThrow(/t\.tar: entry "c" .*names a user or group without a numeric id/);
  });
});
