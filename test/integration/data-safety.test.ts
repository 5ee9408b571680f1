// Issue #9, "never destroy input, never hide a failure", tried through the real CLI as a new user
// would: every writing command refuses to write onto its input (also through hard links and
// symlinks), fails with a message naming the file or ref and no stack trace, and leaves the
// destination exactly as it was (no partial file, no temporary file, no empty layout).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFile,
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Of } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { isTempName } from '../../src/util/atomic-output.js';
import { type RunResult, run, runDadi } from '../cli.js';
import { fixture, haveFixtures } from '../fixtures.js';
import { missing, requireOrSkip } from '../require.js';
import { writeImageLayout } from './convert-helpers.js';

const HAVE = haveFixtures('data-safety CLI tests');
const sample = (p: string) => fixture(`overlaybd-samples/${p}`);
const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');

/** What a path holds now: its bytes' digest, or absent. */
async function state(p: string): Promise<string> {
  return stat(p).then(
    () => sha(p),
    () => 'absent',
  );
}

interface Refusal {
  /** Files that must be byte-identical afterwards. */
  inputs: string[];
  /** The destination: must be as before (absent stays absent). */
  dest?: string;
  /** What the message must name (file or ref). */
  names: string;
  /** More the message must say. */
  says?: RegExp;
}

/** Run `args`, expecting a clean failure that changes nothing. */
async function expectFailure(args: string[], r: Refusal): Promise<RunResult> {
  const watched = [...r.inputs, ...(r.dest ? [r.dest] : [])];
  const before = await Promise.all(watched.map(state));
  const res = await runDadi(args);
  expect(res.code, `${args.join(' ')}: ${res.stderr}`).not.toBe(0);
  expect(res.stderr).toContain(r.names);
  if (r.says) expect(res.stderr).toMatch(r.says);
  expect(res.stderr).not.toMatch(/^\s+at /m);
  expect(res.stderr).not.toMatch(/internal error/);
  expect(await Promise.all(watched.map(state))).toEqual(before);
  for (const d of new Set(watched.map(dirname))) {
    expect((await readdir(d)).filter(isTempName), `temporary files left in ${d}`).toEqual([]);
  }
  return res;
}

describe.runIf(HAVE)('data safety through the CLI', () => {
  let dir: string;
  let layer: string; // a sealed LSMT layer
  let plain: string; // plain bytes
  let zfile: string; // a ZFile (trailer mode)
  let zOverwrite: string; // a ZFile in header-overwrite mode (`layer commit -z`)

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-safety-'));
    layer = join(dir, 'L.lsmt');
    plain = join(dir, 'X');
    zfile = join(dir, 'X.zfile');
    zOverwrite = join(dir, 'commit.zfile');
    await copyFile(sample('lsmt/l1.lsmt'), layer);
    await copyFile(sample('inputs/plain.bin'), plain);
    await copyFile(sample('zfile/plain.zfile-lz4'), zfile);
    const made = await runDadi(['layer', 'commit', '-z', sample('rw/l1.data'), sample('rw/l1.index'), zOverwrite]);
    expect(made.code, made.stderr).toBe(0);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('outputs that are inputs are refused', () => {
    it('layer export L L', async () => {
      await expectFailure(['layer', 'export', layer, layer], { inputs: [layer], names: layer, says: /input/ });
    });
    it('zfile compress X X and decompress Z Z', async () => {
      await expectFailure(['zfile', 'compress', plain, plain], { inputs: [plain], names: plain });
      await expectFailure(['zfile', 'decompress', zfile, zfile], { inputs: [zfile], names: zfile });
    });
    it('compress and decompress onto a hard link and a symlink of the input', async () => {
      for (const [cmd, src] of [
        ['compress', plain],
        ['decompress', zfile],
      ] as const) {
        const hard = join(dir, `${cmd}-hard`);
        const soft = join(dir, `${cmd}-soft`);
        await link(src, hard);
        await symlink(src, soft);
        try {
          await expectFailure(['zfile', cmd, src, hard], { inputs: [src], names: hard, says: /same file/ });
          await expectFailure(['zfile', cmd, src, soft], { inputs: [src], names: soft, says: /same file/ });
        } finally {
          await rm(hard);
          await rm(soft);
        }
      }
    });
    it('layer commit onto its own data or index file; layer import of the layer into itself', async () => {
      const data = join(dir, 'rw.data');
      const index = join(dir, 'rw.index');
      await copyFile(sample('rw/l1.data'), data);
      await copyFile(sample('rw/l1.index'), index);
      await expectFailure(['layer', 'commit', data, index, index], { inputs: [data, index], names: index });
      await expectFailure(['layer', 'commit', data, index, data], { inputs: [data, index], names: data });
      await expectFailure(['layer', 'import', data, index, data], { inputs: [data, index], names: data });
    });
    it('layer create onto existing files refuses unless --force', async () => {
      const data = join(dir, 'new.data');
      const index = join(dir, 'new.index');
      await writeFile(data, 'keep me');
      await expectFailure(['layer', 'create', '--size', '64M', data, index], {
        inputs: [data],
        dest: index,
        names: data,
        says: /already exists.*--force/,
      });
      const forced = await runDadi(['layer', 'create', '--size', '64M', '--force', data, index]);
      expect(forced.code, forced.stderr).toBe(0);
      expect((await readFile(data)).subarray(0, 4).toString()).toBe('LSMT');
    });
  });

  describe('bad input is checked before the destination is touched', () => {
    it('zfile decompress not-a-zfile existing-file keeps the destination', async () => {
      const dest = join(dir, 'existing');
      await writeFile(dest, 'precious');
      await expectFailure(['zfile', 'decompress', plain, dest], {
        inputs: [plain],
        dest,
        names: plain,
        says: /not a ZFile/,
      });
      expect(await readFile(dest, 'utf8')).toBe('precious');
    });

    it('an LSMT trailer whose virtual size is smaller than the index maps', async () => {
      const bad = join(dir, 'small-vsize.lsmt');
      const b = await readFile(layer);
      b.writeBigUInt64LE(1n << 20n, b.length - 4096 + 48);
      await writeFile(bad, b);
      const out = join(dir, 'small-vsize.img');
      await expectFailure(['layer', 'export', out, bad], {
        inputs: [bad],
        dest: out,
        names: bad,
        says: /virtual size 1048576 is smaller than what the index maps/,
      });
    });

    it('an LSMT virtual size of 2^50 and 2^60: bounded, no raw Node error', async () => {
      for (const v of [1n << 50n, 1n << 60n]) {
        const bad = join(dir, `huge-${v}.lsmt`);
        const b = await readFile(layer);
        b.writeBigUInt64LE(v, b.length - 4096 + 48);
        await writeFile(bad, b);
        const out = join(dir, `huge-${v}.img`);
        const r = await expectFailure(['layer', 'export', out, bad], { inputs: [bad], dest: out, names: bad });
        expect(r.stderr).toMatch(/exceeds the 256 TiB/);
        expect(r.stderr).not.toMatch(/EFBIG|out of range|ERR_/);
      }
    });

    it('a ZFile missing its last 100 bytes fails verify (header-overwrite and trailer modes)', async () => {
      for (const src of [zOverwrite, zfile]) {
        const cut = join(dir, `${basename(src)}.cut`);
        await copyFile(src, cut);
        await truncate(cut, (await stat(cut)).size - 100);
        await expectFailure(['zfile', 'verify', cut], { inputs: [cut], names: cut, says: /trailer/ });
      }
      const ok = await runDadi(['zfile', 'verify', zOverwrite]);
      expect(ok.code, ok.stderr).toBe(0);
    });

    it('random bytes and a layer with control characters in its user tag print no raw bytes', async () => {
      const rnd = join(dir, 'random.lsmt');
      const junk = Buffer.alloc(16384);
      for (let i = 0; i < junk.length; i++) junk[i] = (i * 151 + 7) & 0xff;
      Buffer.from('LSMT\0\x01\x02\0\x1b[31m\x07\xff').copy(junk, 0);
      await writeFile(rnd, junk);
      for (const args of [
        ['layer', 'inspect', rnd],
        ['layer', 'export', join(dir, 'rnd.img'), rnd],
        ['zfile', 'verify', rnd],
      ]) {
        const r = await expectFailure(args, { inputs: [rnd], names: rnd });
        // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting there are none
        expect(r.stderr.replace(/\n/g, '')).not.toMatch(/[\u0000-\u001f\u007f-\u009f\ufffd]/);
      }
      const tagged = join(dir, 'tagged.lsmt');
      const b = await readFile(layer);
      Buffer.from('\x1b[31mred\x07\xff\xfe').copy(b, b.length - 4096 + 134);
      await writeFile(tagged, b);
      const r = await runDadi(['layer', 'inspect', tagged]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('\\x1b[31mred\\x07');
      // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting there are none
      expect(r.stdout.replace(/\n/g, '')).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    });
  });

  describe('image names and paths', () => {
    let layout: string;
    const odd = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x01, 0x5c, 0x2e, 0x74, 0x78, 0x74]); // "caf\xe9\x01\.txt"
    const escaped = 'caf\\xe9\\x01\\\\.txt';

    beforeAll(async () => {
      const tree = join(dir, 'tree');
      await mkdir(join(tree, 'etc'), { recursive: true });
      await writeFile(join(tree, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
      await writeFile(Buffer.concat([Buffer.from(`${tree}/`), odd]), 'odd name\n');
      const tar = execFileSync('tar', ['--numeric-owner', '--format=gnu', '-cf', '-', '-C', tree, '.']);
      const src = join(dir, 'src-layout');
      await writeImageLayout(src, [tar], 'v1');
      layout = join(dir, 'obd-layout');
      const conv = await runDadi(['convert', '-q', `oci:${src}:v1`, `oci:${layout}:obd`, '--workdir', join(dir, 'w')]);
      expect(conv.code, conv.stderr).toBe(0);
    });

    it('ls shows a non-UTF-8 name escaped, and cat and stat accept that form back', async () => {
      const ls = await runDadi(['ls', `oci:${layout}:obd`, '/']);
      expect(ls.code, ls.stderr).toBe(0);
      expect(ls.stdout).toContain(` ${escaped}\n`);
      expect(ls.stdout).not.toContain('\ufffd');
      const cat = await runDadi(['cat', `oci:${layout}:obd`, `/${escaped}`]);
      expect(cat.code, cat.stderr).toBe(0);
      expect(cat.stdout).toBe('odd name\n');
      const st = await runDadi(['stat', '--json', `oci:${layout}:obd`, `/${escaped}`]);
      expect(st.code, st.stderr).toBe(0);
      expect(JSON.parse(st.stdout)).toMatchObject({ kind: 'file', size: 9 });
    });

    it('ls of a file names the path', async () => {
      await expectFailure(['ls', `oci:${layout}:obd`, '/etc/passwd'], {
        inputs: [],
        names: '"/etc/passwd": not a directory',
      });
      await expectFailure(['cat', `oci:${layout}:obd`, '/etc/nothing'], {
        inputs: [],
        names: '"/etc/nothing": no such file or directory',
      });
    });

    it('oci:dir:a:b is refused as ambiguous, saying how to write it', async () => {
      await expectFailure(['ls', `oci:${layout}:a:b`, '/'], {
        inputs: [],
        names: `oci:${layout}:a:b`,
        says: /ambiguous.*oci:DIR:TAG/,
      });
    });

    it('image export onto a blob of the layout it reads is refused; a failing export leaves nothing', async () => {
      const blobs = join(layout, 'blobs', 'sha256');
      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
      const manifest = JSON.parse(await readFile(join(blobs, index.manifests[0].digest.slice(7)), 'utf8'));
      const layerBlob = join(blobs, manifest.layers[0].digest.slice(7));
      await expectFailure(['image', 'export', layerBlob, `oci:${layout}:obd`], {
        inputs: [layerBlob],
        names: layerBlob,
        says: /input/,
      });
      const out = join(dir, 'missing-tag.img');
      await expectFailure(['image', 'export', out, `oci:${layout}:nope`], { inputs: [], dest: out, names: 'nope' });
    });

    it('a failed convert into oci:DIR leaves no layout behind', async () => {
      const src = join(dir, 'bad-src');
      const good = execFileSync('tar', ['--format=ustar', '-cf', '-', '-C', join(dir, 'tree'), 'etc']);
      await writeImageLayout(src, [good, good.subarray(0, 700)], 'v1');
      const target = join(dir, 'never');
      await expectFailure(['convert', '-q', `oci:${src}:v1`, `oci:${target}:x`, '--workdir', join(dir, 'w')], {
        inputs: [],
        dest: target,
        names: 'layer 2/2',
      });
      expect(await readdir(dir)).not.toContain('never');
    });
  });

  describe('convert of hostile source blobs', () => {
    const tarOf = async (name: string, content: string) => {
      const src = join(dir, `tar-${name}`);
      await mkdir(src, { recursive: true });
      await writeFile(join(src, name), content);
      return execFileSync('tar', ['--format=ustar', '-cf', '-', '-C', src, name]);
    };

    it('a gzip layer whose bytes do not match its digest: the blob named, the layout untouched', async () => {
      const layer = gzipSync(await tarOf('f', 'payload '.repeat(4000)));
      const tampered = Buffer.from(layer);
      tampered[9] = tampered[9] === 3 ? 255 : 3; // the gzip header's OS byte: still valid gzip, another digest
      const src = join(dir, 'tampered-src');
      await writeImageLayout(src, [layer], 'v1');
      const blob = join(src, 'blobs/sha256', sha256Of(layer).slice(7));
      await writeFile(blob, tampered);
      const target = join(dir, 'tampered-out');
      const r = await expectFailure(
        ['convert', '-q', `oci:${src}:v1`, `oci:${target}:obd`, '--workdir', join(dir, 'w-t')],
        {
          inputs: [blob, join(src, 'index.json')],
          dest: target,
          names: sha256Of(layer),
          says: /content hashes to sha256:[0-9a-f]{64}, not /,
        },
      );
      expect(r.stderr).toContain(src);
    });

    it('random bytes as a gzip layer: a printable message naming the layer', async () => {
      const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24));
      for (const [what, bytes, mediaTypes] of [
        ['gzip-magic', Buffer.concat([Buffer.from([0x1f, 0x8b]), random]), undefined],
        ['as-gzip', random, [MediaType.ociLayerGzip]],
      ] as const) {
        const src = join(dir, `random-${what}`);
        await writeImageLayout(src, [bytes], 'v1', mediaTypes ? { mediaTypes: [...mediaTypes] } : {});
        const target = join(dir, `random-${what}-out`);
        const r = await expectFailure(
          ['convert', '-q', `oci:${src}:v1`, `oci:${target}:obd`, '--workdir', join(dir, `w-${what}`)],
          { inputs: [join(src, 'index.json')], dest: target, names: src, says: /layer 1\/1/ },
        );
        expect(r.stderr).toMatch(/^[\x20-\x7e\n…]*$/);
      }
    });
  });

  describe('registry downloads', () => {
    let server: Server;
    let host: string;
    const want = `sha256:${'ab'.repeat(32)}`;

    beforeAll(async () => {
      // A registry that always answers with bytes that do not match the digest asked for.
      server = createServer((req, res) => {
        if (req.url === '/v2/') return res.writeHead(200).end('{}');
        const body = Buffer.alloc(1 << 20, 7);
        res.writeHead(200, { 'content-length': String(body.length) }).end(body);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((r) => server.close(r));
    });

    it('blob pull of a blob whose digest does not match leaves no partial output', async () => {
      const out = join(dir, 'pulled');
      await expectFailure(['blob', 'pull', '--insecure', `${host}/repo@${want}`, out], {
        inputs: [],
        dest: out,
        names: want,
      });
    });
  });

  const FULL = requireOrSkip('ENOSPC export test', missing({ root: true, tools: ['mount', 'umount'] }));
  describe.runIf(FULL)('a full disk', () => {
    /** Run `fn` on a fresh 256 KiB tmpfs mounted deep in the test's private folder; always unmounted. */
    async function onTinyFs(name: string, fn: (mnt: string) => Promise<void>): Promise<void> {
      const mnt = join(dir, 'private', name);
      await mkdir(mnt, { recursive: true });
      const m = await run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'dadi-test', mnt]);
      expect(m.code, m.stderr).toBe(0);
      try {
        await fn(mnt);
      } finally {
        await run('umount', [mnt]);
      }
    }

    it('layer export onto a full filesystem names the file and removes it', async () => {
      await onTinyFs('export', async (mnt) => {
        const out = join(mnt, 'disk.img');
        await expectFailure(['layer', 'export', out, layer], {
          inputs: [layer],
          dest: out,
          names: out,
          says: /no space left/,
        });
        expect(await readdir(mnt)).toEqual([]);
      });
    });

    it('layer import that fills the disk names the file and leaves the layer as it was', async () => {
      await onTinyFs('import', async (mnt) => {
        const data = join(mnt, 'l.data');
        const index = join(mnt, 'l.index');
        const made = await runDadi(['layer', 'create', '--size', '64M', data, index]);
        expect(made.code, made.stderr).toBe(0);
        const raw = join(dir, 'raw.img');
        await writeFile(raw, Buffer.alloc(1 << 20, 0x5a));
        await expectFailure(['layer', 'import', data, index, raw], {
          inputs: [raw, data, index],
          names: data,
          says: /no space left/,
        });
        expect((await readdir(mnt)).sort()).toEqual(['l.data', 'l.index']);
      });
    });
  });
});
