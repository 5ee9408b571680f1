// Property: one tree written by GNU tar as GNU, PAX and ustar archives applies to byte-identical
// ext4 images. The formats spell long names (GNU long-name headers, PAX path records, the ustar
// prefix), big owner ids and link targets differently; the reader must hear the same entries.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, link, lutimes, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer } from '../../src/ext4/apply.js';
import { Ext4 } from '../../src/ext4/fs.js';
import { mkfs } from '../../src/ext4/mkfs.js';
import { SparseMemoryFile } from '../../src/ext4/sparse-file.js';
import { missing, requireOrSkip } from '../require.js';

const FS_SIZE = 32 << 20;

type Node =
  | { kind: 'file'; data: string; uid: number; gid: number; mode: number; mtime: number }
  | { kind: 'dir'; mode: number; mtime: number; children: Record<string, Node> }
  | { kind: 'symlink'; target: string }
  | { kind: 'fifo'; mtime: number }
  | { kind: 'chr'; major: number; minor: number };

const name = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,39}$/).filter((s) => !s.startsWith('.wh.') && s !== '..');
const mtime = fc.integer({ min: 0, max: 2 ** 32 });
// ustar holds ids below 8^7 in its octal fields: beyond that GNU/PAX would differ by design.
const id = fc.integer({ min: 0, max: 2 ** 21 - 1 });
const leaf: fc.Arbitrary<Node> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('file' as const),
      data: fc.string({ maxLength: 5000 }),
      uid: id,
      gid: id,
      mode: fc.integer({ min: 0, max: 0o7777 }),
      mtime,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('symlink' as const), target: fc.stringMatching(/^[a-z/.]{1,90}$/) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fifo' as const), mtime }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('chr' as const),
      major: fc.integer({ min: 1, max: 255 }),
      minor: fc.integer({ min: 0, max: 255 }),
    }),
  },
);
const tree = fc.letrec<{ dir: Node; node: Node }>((tie) => ({
  dir: fc.record({
    kind: fc.constant('dir' as const),
    mode: fc.integer({ min: 0o700, max: 0o777 }),
    mtime,
    children: fc.dictionary(name, tie('node'), { maxKeys: 5 }),
  }),
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('dir')),
})).dir;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-formats-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Create the tree at `path` with whole-second times (PAX would keep sub-second ones; the others cannot). */
async function build(path: string, node: Node & { kind: 'dir' }): Promise<void> {
  await mkdir(path, { recursive: true });
  for (const [k, child] of Object.entries(node.children)) {
    const p = join(path, k);
    switch (child.kind) {
      case 'dir':
        await build(p, child);
        break;
      case 'file':
        await writeFile(p, child.data);
        execFileSync('chown', [`${child.uid}:${child.gid}`, p]);
        await chmod(p, child.mode);
        await utimes(p, child.mtime, child.mtime);
        break;
      case 'symlink':
        await symlink(child.target, p);
        await lutimes(p, 0, 0);
        break;
      case 'fifo':
        execFileSync('mkfifo', [p]);
        await utimes(p, child.mtime, child.mtime);
        break;
      case 'chr':
        execFileSync('mknod', [p, 'c', String(child.major), String(child.minor)]);
        await utimes(p, 1, 1);
        break;
    }
  }
  await chmod(path, node.mode);
  await utimes(path, node.mtime, node.mtime);
}

const FORMATS: Record<string, string[]> = {
  gnu: ['--format=gnu'],
  pax: ['--format=pax', '--pax-option=delete=atime,delete=ctime'],
  ustar: ['--format=ustar'],
};

/** Apply `tar` to a fresh filesystem; returns the image's sha256 and its root's entry count. */
async function imageOf(tar: Buffer, label: string): Promise<{ sha: string; entries: number }> {
  const file = new SparseMemoryFile(FS_SIZE, label);
  await mkfs(file, { size: FS_SIZE });
  const fs = await Ext4.open(file);
  await applyLayer(
    fs,
    (async function* () {
      yield tar;
    })(),
    { name: label },
  );
  await fs.close();
  const h = createHash('sha256');
  const buf = new Uint8Array(1 << 20);
  for (let o = 0; o < FS_SIZE; o += buf.length) h.update(buf.subarray(0, await file.read(buf, o)));
  return { sha: h.digest('hex'), entries: (await (await Ext4.open(file)).readdir('/')).length };
}

const HAVE = requireOrSkip(
  'GNU/PAX/ustar property',
  missing({ root: true, tools: ['tar', 'mknod', 'mkfifo', 'chown'], hint: 'run as root with GNU tar' }),
);

describe.runIf(HAVE)('GNU, PAX and ustar spellings of one tree', () => {
  it('apply to byte-identical ext4 images (fast-check)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(tree, async (t) => {
        const root = join(dir, `t${run++}`);
        // A long directory chain so paths pass 100 bytes (GNU long names, PAX path, ustar prefix).
        const deep = join(root, 'a'.repeat(60), 'b'.repeat(50));
        await build(deep, t as Node & { kind: 'dir' });
        // Hard links near the root: ustar cannot hold a link target over 100 bytes.
        await writeFile(join(root, 'hl-src'), 'linked');
        await utimes(join(root, 'hl-src'), 7, 7);
        await link(join(root, 'hl-src'), join(root, 'hl-dst'));
        for (const d of [join(root, 'a'.repeat(60)), root]) await utimes(d, 7, 7);
        const images: { fmt: string; sha: string; entries: number }[] = [];
        const tars = new Set<string>();
        for (const [fmt, args] of Object.entries(FORMATS)) {
          const tar = execFileSync('tar', [...args, '--numeric-owner', '--sort=name', '-C', root, '-cf', '-', '.'], {
            maxBuffer: 1 << 28,
          });
          tars.add(createHash('sha256').update(tar).digest('hex'));
          images.push({ fmt, ...(await imageOf(tar, `${fmt}.tar`)) });
        }
        await rm(root, { recursive: true, force: true });
        expect(tars.size).toBe(3); // three different spellings...
        expect(images[0]!.entries).toBe(4); // a..., hl-src, hl-dst and mkfs's lost+found
        // ...one filesystem.
        expect(images.map((i) => i.sha)).toEqual(images.map(() => images[0]!.sha));
      }),
      { numRuns: 12 }, // seeded globally (test/setup.ts: DADI_TEST_SEED)
    );
  }, 300_000);
});
