// Issue #9 acceptance: a layer whose 10 GiB file is in PAX form (ustar size field 0, the size in
// a PAX record, as GNU tar, Go's archive/tar and BuildKit write files ≥ 8 GiB) converts with
// `dadi convert`; `dadi cat` streams the file byte for byte; the exported disk is e2fsck-clean. The
// other PAX overrides (path, linkpath, uid/gid, mtime) are honoured on the same layer. The layer
// is generated on the fly: gzip members of a precompressed zero chunk, never 10 GiB on disk.
// Slow (about a minute on a quiet machine: 10 GiB gunzipped, hashed and read back); DADI_SKIP_SLOW=1 skips it.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Of } from '../../src/oci/digest.js';
import { runDadi } from '../cli.js';
import { e2fsck } from '../ext4-tools.js';
import { BIG, bigFileChunk, CHUNK, LONG_DIR, LONG_TARGET, writeLayer } from '../large-pax-layer.js';
import { missing, requireOrSkip, slowTestsOff } from '../require.js';
import { openConverted, writeImageLayout } from './convert-helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-pax-large-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Run `dadi cat IMAGE PATH`, comparing its output byte for byte with the big file as it streams. */
function catMatches(
  image: string,
  path: string,
): Promise<{ code: number; bytes: number; firstDiff: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'cat', image, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const zero = new Uint8Array(CHUNK);
    let want: { k: number; bytes: Uint8Array } = { k: -1, bytes: zero };
    let bytes = 0;
    let firstDiff = -1;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      for (let o = 0; o < d.length && firstDiff < 0; ) {
        const at = bytes + o;
        const k = Math.floor(at / CHUNK);
        if (k !== want.k) want = { k, bytes: bigFileChunk(k) ?? zero };
        const off = at - k * CHUNK;
        const n = Math.min(d.length - o, want.bytes.length - off);
        if (n <= 0 || Buffer.compare(d.subarray(o, o + n), want.bytes.subarray(off, off + n)) !== 0) firstDiff = at;
        o += Math.max(n, 1);
      }
      bytes += d.length;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, bytes, firstDiff, stderr }));
  });
}

const HAVE =
  requireOrSkip('10 GiB PAX layer', slowTestsOff()) &&
  requireOrSkip('10 GiB PAX layer', missing({ tools: ['e2fsck'], hint: 'apt-get install e2fsprogs' }));

describe.runIf(HAVE)('a 10 GiB file in a PAX layer', () => {
  it('converts; dadi cat streams it byte for byte; PAX path/linkpath/uid/gid/mtime honoured; e2fsck clean', async () => {
    const layer = join(dir, 'layer.tar.gz');
    const diffId = await writeLayer(layer);
    const src = join(dir, 'src');
    const { readFile } = await import('node:fs/promises');
    const blob = await readFile(layer); // ~10 MiB of gzip
    expect(blob.length).toBeLessThan(64 << 20);
    await writeImageLayout(src, [blob], 'v1', { diffIds: [diffId] });
    expect(sha256Of(blob)).toMatch(/^sha256:/);

    const out = join(dir, 'out');
    const conv = await runDadi(['convert', '-q', `oci:${src}:v1`, `oci:${out}:obd`, '--workdir', join(dir, 'work')]);
    expect(conv.stderr).toBe('');
    expect(conv.code).toBe(0);

    // Byte equality with the generated content (stronger than, and implies, the same sha256).
    const cat = await catMatches(`oci:${out}:obd`, '/big');
    expect(cat.stderr).toBe('');
    expect(cat.code).toBe(0);
    expect(cat.firstDiff).toBe(-1);
    expect(cat.bytes).toBe(BIG);

    const img = await openConverted(out, 'obd');
    try {
      const st = await img.fs.stat('/big');
      expect(st.size).toBe(BIG);
      expect(st.mtime).toEqual({ sec: 1600000000, nsec: 0 });
      // Holes stay holes: a few data blocks, not 10 GiB of zeros.
      expect(st.blocks * 512).toBeLessThan(1 << 20);
      const owned = await img.fs.stat(`/${LONG_DIR}/${'f'.repeat(200)}`);
      expect([owned.uid, owned.gid, owned.mtime]).toEqual([3000000, 4000000, { sec: 1700000000, nsec: 250000000 }]);
      expect(await img.fs.readlink('/ln')).toBe(LONG_TARGET);
      expect((await img.fs.stat('/after.txt')).mode & 0o7777).toBe(0o600);
      const parts: Uint8Array[] = [];
      for await (const c of img.fs.readFile('/after.txt')) parts.push(c);
      expect(Buffer.concat(parts).toString()).toBe('after the big file\n');
    } finally {
      await img.close();
    }

    const disk = join(dir, 'disk.img');
    const exp = await runDadi(['image', 'export', disk, `oci:${out}:obd`]);
    expect(exp.code, exp.stderr).toBe(0);
    const fsck = await e2fsck(disk);
    expect(fsck.problems).toEqual([]);
    expect(fsck.code).toBe(0);
  }, 300_000);
});
