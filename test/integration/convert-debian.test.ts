// Acceptance 2 of issue #4 (slow, ~1–2 min; DADI_SKIP_SLOW=1 skips it): a 4-layer Debian image built with
// debootstrap + umoci (base; additions with xattrs and hard links; deletions; an opaque dir)
// converts; the exported disk is e2fsck-clean (-fn, and -fD finds nothing to optimise); the tree — path, type, mode, uid, gid, size,
// sha256, symlink target, xattrs, mtime, hard-link groups, device numbers — equals `umoci unpack`.
// The debootstrap tree is built once and cached (test/integration/debian-image.ts).

import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/index.js';
import type { Ext4 } from '../../src/ext4/index.js';
import { exportDisk } from '../../src/image/raw-disk.js';
import { changedByE2fsckD, e2fsck } from '../ext4-tools.js';
import { missing, requireOrSkip, slowTestsOff } from '../require.js';
import { openConverted } from './convert-helpers.js';
import { debianRootfs } from './debian-image.js';

const HAVE =
  requireOrSkip('convert Debian image', slowTestsOff()) &&
  requireOrSkip(
    'convert Debian image',
    missing({
      tools: process.env.DADI_DEBIAN_ROOTFS ? ['umoci'] : ['umoci', 'debootstrap'],
      hint: 'apt-get install umoci debootstrap',
    }),
  );

let dir: string;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: dir, stdio: 'pipe', maxBuffer: 1 << 28 });

type Entry = Record<string, string | number>;

/** The Python side: the same description of a host tree (umoci's unpack). */
const PY_DESCRIBE = `
import os, sys, stat, json, hashlib
root = sys.argv[1]; out = {}; links = {}
def walk(rel):
    for name in sorted(os.listdir(os.path.join(root, rel)) , key=lambda n: os.fsencode(n)):
        r = rel + '/' + name if rel else name
        if r == 'lost+found': continue
        p = os.path.join(root, r); st = os.lstat(p); m = st.st_mode
        e = {'mode': stat.S_IMODE(m), 'uid': st.st_uid, 'gid': st.st_gid, 'mtime': st.st_mtime_ns}
        xs = sorted(os.listxattr(p, follow_symlinks=False))
        if xs: e['xattrs'] = ','.join(x + '=' + os.getxattr(p, x, follow_symlinks=False).hex() for x in xs)
        if stat.S_ISLNK(m): e['type'] = 'symlink'; e['target'] = os.readlink(p)
        elif stat.S_ISDIR(m): e['type'] = 'dir'
        elif stat.S_ISREG(m):
            e['type'] = 'file'; e['size'] = st.st_size
            e['sha256'] = hashlib.sha256(open(p, 'rb').read()).hexdigest()
            if st.st_nlink > 1: e['link'] = links.setdefault(st.st_ino, r)
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            e['type'] = 'chr' if stat.S_ISCHR(m) else 'blk'; e['rdev'] = '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
        elif stat.S_ISFIFO(m): e['type'] = 'fifo'
        else: e['type'] = 'sock'
        out[r] = e
        if stat.S_ISDIR(m): walk(r)
walk('')
json.dump(out, sys.stdout)
`;

async function describeOurs(fs: Ext4): Promise<Record<string, Entry>> {
  const { createHash } = await import('node:crypto');
  const out: Record<string, Entry> = {};
  const links = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    const entries = (await fs.readdir(`/${rel}`)).filter((e) => e.name !== '.' && e.name !== '..');
    entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (const d of entries) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (r === 'lost+found') continue;
      const st = await fs.stat(`/${r}`);
      const e: Entry = {
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtime.sec * 1e9 + st.mtime.nsec,
      };
      const xs = [...st.xattrs.keys()].sort();
      if (xs.length) e.xattrs = xs.map((k) => `${k}=${Buffer.from(st.xattrs.get(k)!).toString('hex')}`).join(',');
      e.type = st.kind;
      if (st.kind === 'symlink') e.target = await fs.readlink(`/${r}`);
      else if (st.kind === 'file') {
        e.size = st.size;
        const h = createHash('sha256');
        for await (const c of fs.readFile(`/${r}`)) h.update(c);
        e.sha256 = h.digest('hex');
        if (st.nlink > 1) {
          if (!links.has(st.ino)) links.set(st.ino, r);
          e.link = links.get(st.ino)!;
        }
      } else if (st.kind === 'chr' || st.kind === 'blk') e.rdev = `${st.rdev.major}:${st.rdev.minor}`;
      out[r] = e;
      if (st.kind === 'dir') await walk(r);
    }
  };
  await walk('');
  return out;
}

describe.runIf(HAVE)('convert a debootstrap + umoci Debian image', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-convert-debian-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('converts; e2fsck clean; the tree equals umoci unpack', { timeout: 600_000 }, async () => {
    const rootfs = await debianRootfs();
    const py = `import os
os.setxattr('b/rootfs/opt/added/tool', 'security.capability', bytes([1,0,0,2,0,0x20,0,0]+[0]*12))
os.setxattr('b/rootfs/opt/added/tool', 'user.note', b'\\x00\\xffbinary')
os.setxattr('b/rootfs/opt/added', 'trusted.big', b'z'*700)`;
    sh(`umoci init --layout img && umoci new --image img:deb && umoci unpack --image img:deb b
      cp -a ${rootfs}/. b/rootfs/ && rm -f b/rootfs/.dadi-complete && umoci repack --refresh-bundle --image img:deb b
      mkdir -p b/rootfs/opt/added && cp -a /usr/share/zoneinfo b/rootfs/opt/added/ && cp /bin/ls b/rootfs/opt/added/tool
      ln b/rootfs/opt/added/tool b/rootfs/opt/added/tool.hl && mknod b/rootfs/opt/added/blk b 259 70000
      touch -h -d '2023-01-02 03:04:05.123456789' b/rootfs/opt/added/tool b/rootfs/etc/hostname
      echo changed >> b/rootfs/etc/issue`);
    execFileSync('python3', ['-c', py], { cwd: dir });
    sh(`umoci repack --refresh-bundle --image img:deb b
      rm -rf b/rootfs/usr/share/doc/* b/rootfs/usr/share/man b/rootfs/opt/added/zoneinfo/America b/rootfs/etc/motd
      umoci repack --refresh-bundle --image img:deb b
      mkdir -p o/etc/apt && touch o/etc/apt/.wh..wh..opq && echo 'deb http://x/ y main' > o/etc/apt/only.list
      tar --numeric-owner -cf opq.tar -C o etc && umoci raw add-layer --image img:deb opq.tar
      umoci config --image img:deb --config.cmd /bin/bash
      umoci unpack --image img:deb ref`);

    const out = join(dir, 'out');
    const r = await convertImage(`oci:${join(dir, 'img')}:deb`, `oci:${out}:obd`, { workDir: join(dir, 'work') });
    expect(r.layers).toHaveLength(4);
    console.log(
      'Debian convert:',
      r.layers.map((l) => ({ size: l.size, src: l.source.size, apply: l.seconds.apply, commit: l.seconds.commit })),
      `total ${r.seconds.toFixed(2)} s`,
    );
    const want = JSON.parse(
      execFileSync('python3', ['-c', PY_DESCRIBE, join(dir, 'ref/rootfs')], { maxBuffer: 1 << 28 }).toString(),
    );
    const img = await openConverted(out, 'obd');
    try {
      const got = await describeOurs(img.fs);
      const diffs = Object.keys({ ...want, ...got }).filter((k) => JSON.stringify(want[k]) !== JSON.stringify(got[k]));
      expect(diffs.slice(0, 20).map((k) => ({ path: k, want: want[k], got: got[k] }))).toEqual([]);
      expect(Object.keys(got).length).toBeGreaterThan(5000);
      await exportDisk(img.stack, join(dir, 'disk.img'));
    } finally {
      await img.close();
    }
    const fsck = await e2fsck(join(dir, 'disk.img'));
    expect(fsck.problems).toEqual([]);
    expect(fsck.code).toBe(0);
    // e2fsck -D finds nothing to optimise: big directories are already indexed as it would index them.
    expect(await changedByE2fsckD(join(dir, 'disk.img'))).toEqual([]);
  });
});
