// The kernel's read-write mount of our ext4 leaves the backup superblocks alone: mkfs stores the
// overhead the kernel computes (s_overhead_clusters), so ext4_update_overhead finds nothing to
// update. With the field zeroed (as before), the same mount rewrites every backup: on a lazily
// fetched image that was one dependent read and write per backup on each container's start.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFile } from '../../src/blockfile/local.js';
import { BLOCKS_PER_GROUP, computeGeometry, hasSuper, overheadBlocks } from '../../src/ext4/geometry.js';
import { BLOCK_SIZE } from '../../src/ext4/layout.js';
import { mkfs } from '../../src/ext4/mkfs.js';
import { missing, requireOrSkip } from '../require.js';

const HAVE = requireOrSkip(
  'ext4 overhead (kernel mount)',
  missing({ root: true, tools: ['losetup', 'mount', 'umount'], files: ['/dev/loop-control'] }),
);

const SIZE = 2 * 1024 ** 3;
const OVERHEAD_AT = 0x248;

describe.skipIf(!HAVE)('s_overhead_clusters as the kernel counts it', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/dadi-ext4-overhead-');
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The superblock of every group that has one (group 0's at byte 1024), as raw bytes. */
  async function superblocks(path: string): Promise<Map<number, Buffer>> {
    const geo = computeGeometry(SIZE, 16384);
    const fh = await open(path, 'r');
    try {
      const out = new Map<number, Buffer>();
      for (let g = 0; g < geo.groupCount; g++) {
        if (!hasSuper(g)) continue;
        const buf = Buffer.alloc(1024);
        await fh.read(buf, 0, 1024, g * BLOCKS_PER_GROUP * BLOCK_SIZE + (g === 0 ? 1024 : 0));
        out.set(g, buf);
      }
      return out;
    } finally {
      await fh.close();
    }
  }

  /** Mount `path` read-write through a loop device and unmount it again. */
  function mountRw(path: string): void {
    const mnt = join(dir, 'mnt');
    const dev = execFileSync('losetup', ['-f', '--show', path], { encoding: 'utf8' }).trim();
    try {
      execFileSync('mount', ['-t', 'ext4', '-o', 'rw', dev, mnt]);
      execFileSync('umount', [mnt]);
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
  }

  async function makeImage(name: string): Promise<string> {
    const path = join(dir, name);
    const f = await LocalFile.create(path);
    try {
      await mkfs(f, { size: SIZE });
    } finally {
      await f.close();
    }
    await truncate(path, SIZE); // sparse: the device is as large as the filesystem says
    return path;
  }

  it('mkfs stores it; a rw mount keeps it and rewrites no backup superblock', async () => {
    await mkdir(join(dir, 'mnt'), { recursive: true });
    const path = await makeImage('ours.img');
    const before = await superblocks(path);
    expect(before.size).toBeGreaterThan(2);
    const overhead = overheadBlocks(computeGeometry(SIZE, 16384));
    expect(before.get(0)!.readUInt32LE(OVERHEAD_AT)).toBe(overhead);
    mountRw(path);
    const after = await superblocks(path);
    expect(after.get(0)!.readUInt32LE(OVERHEAD_AT)).toBe(overhead);
    for (const [g, sb] of before) if (g > 0) expect(after.get(g)!.equals(sb), `backup in group ${g}`).toBe(true);
  }, 60_000);

  it('with the field zeroed, the same mount rewrites every backup with the value computed here', async () => {
    const path = await makeImage('zeroed.img');
    const fh = await open(path, 'r+');
    try {
      for (const g of (await superblocks(path)).keys()) {
        await fh.write(Buffer.alloc(4), 0, 4, g * BLOCKS_PER_GROUP * BLOCK_SIZE + (g === 0 ? 1024 : 0) + OVERHEAD_AT);
      }
    } finally {
      await fh.close();
    }
    mountRw(path);
    const overhead = overheadBlocks(computeGeometry(SIZE, 16384));
    for (const [g, sb] of await superblocks(path)) expect(sb.readUInt32LE(OVERHEAD_AT), `group ${g}`).toBe(overhead);
  }, 60_000);
});
