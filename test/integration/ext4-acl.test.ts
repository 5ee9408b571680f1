// POSIX ACLs through a conversion (issue #16): a umoci image whose files carry access and default
// ACLs (small ones in the inode, a long one in an xattr block) converts; the disk is e2fsck clean;
// its on-disk ACL bytes equal what `mkfs.ext4 -d` stores for the same tree; mounted by the kernel,
// `getfacl` and the whole tree (xattrs included) equal `umoci unpack`.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/index.js';
import { exportDisk } from '../../src/image/raw-disk.js';
import { run } from '../cli.js';
import { changedByE2fsckD, e2fsck, mkfsFromDir } from '../ext4-tools.js';
import { missing, requireOrSkip } from '../require.js';
import { describeFullTree } from '../tree.js';
import { openConverted } from './convert-helpers.js';

const HAVE = requireOrSkip(
  'ext4 ACL conversion',
  missing({
    root: true,
    files: ['/dev/loop-control'],
    tools: ['setfacl', 'getfacl', 'umoci', 'mkfs.ext4', 'debugfs', 'mount', 'umount'],
    hint: 'apt-get install acl umoci e2fsprogs',
  }),
);

let dir: string;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe' }).toString();

/** `debugfs ea_list` of each path (the raw on-disk xattr bytes e2fsprogs sees), in name order. */
function eaLists(image: string, paths: string[]): Record<string, string[]> {
  const lines = (p: string) => sh(`debugfs -R 'ea_list ${p}' ${image} 2>/dev/null`).split('\n');
  return Object.fromEntries(paths.map((p) => [p, lines(p).sort()]));
}

describe.runIf(HAVE)('POSIX ACLs in a converted image', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-acl-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are stored as ext4 ACLs: e2fsck clean, e2fsprogs bytes, getfacl and tree equal umoci unpack', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `u:${2000 + i}:r`).join(',');
    sh(`umoci init --layout img && umoci new --image img:t && umoci unpack --image img:t b >/dev/null
      mkdir -p b/rootfs/d/sub && echo hi > b/rootfs/d/f && echo plain > b/rootfs/plain && echo big > b/rootfs/big
      setfacl -m u:99:rwx b/rootfs/d && setfacl -d -m u:1234:rwx,g:7:rx b/rootfs/d
      setfacl -m u:1234:rx,g:55:r b/rootfs/d/f && setfacl -m ${many} b/rootfs/big
      umoci repack --image img:t b && umoci unpack --image img:t ref >/dev/null`);
    const out = join(dir, 'out');
    await convertImage(`oci:${join(dir, 'img')}:t`, `oci:${out}:obd`, { workDir: join(dir, 'work') });
    const disk = join(dir, 'disk.img');
    const img = await openConverted(out, 'obd');
    try {
      await exportDisk(img.stack, disk);
    } finally {
      await img.close();
    }
    const fsck = await e2fsck(disk);
    expect(fsck.problems).toEqual([]);
    expect(fsck.code).toBe(0);
    expect(await changedByE2fsckD(disk)).toEqual([]);

    // e2fsprogs converts ACLs to the on-disk form itself when it builds an image from a tree.
    const refDisk = join(dir, 'ref.img');
    await mkfsFromDir(join(dir, 'ref/rootfs'), refDisk, '16M');
    const paths = ['/d', '/d/f', '/d/sub', '/big', '/plain'];
    const ours = eaLists(disk, paths);
    expect(ours['/d']!.join('\n')).toContain('system.posix_acl_default (36) = 01 00 00 00');
    expect(ours).toEqual(eaLists(refDisk, paths));

    const mnt = join(dir, 'm', 'mnt');
    await mkdir(mnt, { recursive: true });
    const m = await run('mount', ['-o', 'ro,loop', disk, mnt]);
    expect(m.code, m.stderr).toBe(0);
    try {
      const getfacl = (root: string) => sh(`cd ${root} && getfacl -R -n -p d big plain`);
      const acls = getfacl(mnt);
      expect(acls).toContain('user:2039:r--');
      expect(acls).toContain('default:group:7:r-x');
      expect(acls).toEqual(getfacl(join(dir, 'ref/rootfs')));
      expect(await describeFullTree(mnt)).toEqual(await describeFullTree(join(dir, 'ref/rootfs')));
    } finally {
      const u = await run('umount', [mnt]);
      expect(u.code, u.stderr).toBe(0);
    }
  });
});
