// Acceptance for the formats (issue #2) through the real `dadi` command: every relation the
// reference fixtures promise, e2fsck on exported disks, and file trees equal to the source tar.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, runDadi } from '../cli.js';
import { debugfsModes, describeTree, e2fsck, rdump } from '../ext4-tools.js';
import { fixture, haveFixtures, U1 } from '../fixtures.js';

const have = haveFixtures('layer fixture acceptance');
const samples = (rel: string) => fixture(`overlaybd-samples/${rel}`);
const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

describe.skipIf(!have)('dadi layer/zfile against the reference fixtures', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'dadi-fx-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const ok = async (args: string[]) => {
    const r = await runDadi(args);
    expect(r.stderr + r.stdout, `dadi ${args.join(' ')}`).not.toMatch(/internal error/);
    expect(r.code, `dadi ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };

  it('commit of rw/l1 with uuid U1 is byte-identical to lsmt/l1.lsmt', async () => {
    const out = join(tmp, 'l1.lsmt');
    await ok(['layer', 'commit', samples('rw/l1.data'), samples('rw/l1.index'), out, '--uuid', U1]);
    expect(await sha(out)).toBe(await sha(samples('lsmt/l1.lsmt')));
  });

  it('commit without uuid and with a message reproduce l1-nouuid and l1-usertag', async () => {
    const a = join(tmp, 'nouuid.lsmt');
    const b = join(tmp, 'usertag.lsmt');
    await ok(['layer', 'commit', samples('rw/l1.data'), samples('rw/l1.index'), a]);
    await ok([
      'layer',
      'commit',
      samples('rw/l1.data'),
      samples('rw/l1.index'),
      b,
      '--uuid',
      U1,
      '-m',
      'hello user_tag',
    ]);
    expect(await sha(a)).toBe(await sha(samples('lsmt/l1-nouuid.lsmt')));
    expect(await sha(b)).toBe(await sha(samples('lsmt/l1-usertag.lsmt')));
  });

  it('commit -z -t reproduces the tar-wrapped ZFile', async () => {
    const out = join(tmp, 'l1.zfile-lz4.tar');
    await ok(['layer', 'commit', '-z', '-t', samples('rw/l1.data'), samples('rw/l1.index'), out, '--uuid', U1]);
    const r = await ok(['zfile', 'decompress', out, join(tmp, 'back.lsmt')]);
    expect(r.code).toBe(0);
    expect(await sha(join(tmp, 'back.lsmt'))).toBe(await sha(samples('lsmt/l1.lsmt')));
    expect(await sha(out)).toBe(await sha(samples('zfile/l1.zfile-lz4.tar')));
  });

  for (const name of ['l1.zfile-lz4', 'l1.zfile-zstd', 'l1.zfile-lz4-bs64', 'l1.lsmt.zfile-lz4', 'l1.zfile-lz4.tar']) {
    it(`zfile decompress/verify of ${name} gives l1.lsmt`, async () => {
      const out = join(tmp, `${name}.out`);
      await ok(['zfile', 'verify', samples(`zfile/${name}`)]);
      await ok(['zfile', 'decompress', samples(`zfile/${name}`), out]);
      expect(await sha(out)).toBe(await sha(samples('lsmt/l1.lsmt')));
    });
  }

  it('zfile compress of plain.bin reproduces the reference lz4 files', async () => {
    const a = join(tmp, 'plain.lz4');
    const b = join(tmp, 'plain.lz4-bs64');
    await ok(['zfile', 'compress', samples('inputs/plain.bin'), a]);
    await ok(['zfile', 'compress', '--bs', '64', samples('inputs/plain.bin'), b]);
    expect(await sha(a)).toBe(await sha(samples('zfile/plain.zfile-lz4')));
    expect(await sha(b)).toBe(await sha(samples('zfile/plain.zfile-lz4-bs64')));
  });

  it('export of l1.lsmt (any wrapping) is an ext4 that e2fsck accepts, with the files of l1.tar', async () => {
    const img = join(tmp, 'l1.img');
    await ok(['layer', 'export', img, samples('lsmt/l1.lsmt')]);
    const fsck = await e2fsck(img);
    expect(fsck.unexpected, fsck.output).toEqual([]);

    // Every wrapping of the same layer exports the same disk.
    const img2 = join(tmp, 'l1-tar.img');
    await ok(['layer', 'export', img2, samples('zfile/l1.zfile-lz4.tar')]);
    expect(await sha(img2)).toBe(await sha(img));

    const fromImage = join(tmp, 'rdump');
    const fromTar = join(tmp, 'untar');
    await mkdir(fromImage);
    await mkdir(fromTar);
    await rdump(img, fromImage);
    const t = await run('tar', ['-xpf', samples('inputs/l1.tar'), '--numeric-owner', '-C', fromTar]);
    expect(t.code, t.stderr).toBe(0);
    const got = await describeTree(fromImage);
    const want = await describeTree(fromTar);
    // rdump drops setuid/setgid/sticky bits: take the full mode of each inode from debugfs itself.
    const modes = await debugfsModes(img, Object.keys(got));
    for (const [path, entry] of Object.entries(got)) if (entry.type !== 'symlink') entry.mode = modes[path]!;
    expect(Object.keys(got).length).toBeGreaterThan(20);
    expect(got).toEqual(want);
  });

  it('the real base layer ext4_64 exports sparsely to a 64 GiB ext4 that e2fsck accepts', async () => {
    const tarPath = join(tmp, 'ext4_64.tar');
    await pipeline(createReadStream(fixture('overlaybd/ext4_64.tar.gz')), createGunzip(), createWriteStream(tarPath));
    const img = join(tmp, 'ext4_64.img');
    const r = await ok(['layer', 'export', '--json', img, tarPath]);
    const stats = JSON.parse(r.stdout);
    expect(stats.virtualSize).toBe(64 * 2 ** 30);
    const st = await stat(img);
    expect(st.size).toBe(64 * 2 ** 30);
    expect(st.blocks * 512).toBeLessThan(600 * 2 ** 20); // not 64 GiB on disk
    const fsck = await e2fsck(img);
    expect(fsck.problems, fsck.output).toEqual([]);
    expect(fsck.code).toBe(0);
  });

  it('inspect reports the wrapping and the LSMT trailer as JSON', async () => {
    const r = await ok(['layer', 'inspect', '--json', samples('zfile/l1.zfile-lz4.tar')]);
    const info = JSON.parse(r.stdout);
    expect(info.wrapping).toEqual(['tar', 'zfile', 'lsmt']);
    expect(info.lsmt.uuid.toLowerCase()).toBe(U1);
    expect(info.lsmt.virtualSize).toBe(2 ** 30);
  });

  it('errors name the file and exit non-zero', async () => {
    const r = await runDadi(['layer', 'inspect', samples('inputs/plain.bin')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('plain.bin');
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });
});
