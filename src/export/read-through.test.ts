import { execFileSync } from 'node:child_process';
import { link, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReadThrough, readInside, resolveInside } from './read-through.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'dadi-read-through-'));
  await mkdir(join(root, 'lib/x86_64-linux-gnu'), { recursive: true });
  await mkdir(join(root, 'lib64'));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), Buffer.alloc(3 << 20, 7));
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
  // As in Debian: an absolute link, meant inside the image.
  await symlink('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', join(root, 'lib64/ld-linux-x86-64.so.2'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveInside', () => {
  it('follows absolute and relative links inside the root, as if it were /', async () => {
    await symlink('../lib64/ld-linux-x86-64.so.2', join(root, 'etc/rel'));
    const ld = join(root, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    expect(await resolveInside(root, '/lib64/ld-linux-x86-64.so.2')).toBe(ld);
    expect(await resolveInside(root, '/etc/rel')).toBe(ld);
    expect(await resolveInside(root, '/etc/../etc/./group')).toBe(join(root, 'etc/group'));
  });

  it('never leaves the root: .. stops at it, and a link to a host path is looked for inside', async () => {
    // /etc/hostname exists on the host, not in the root.
    await symlink('/etc/hostname', join(root, 'etc/abs'));
    await symlink('../../../../../../etc/hostname', join(root, 'etc/up'));
    expect(await resolveInside(root, '/etc/abs')).toBeUndefined();
    expect(await resolveInside(root, '/etc/up')).toBeUndefined();
    expect(await resolveInside(root, '/../../etc/group')).toBe(join(root, 'etc/group'));
  });

  it('with a memo, looks at each component once: what it found is kept, missing parts too', async () => {
    const memo = new Map<string, string | null>();
    const ld = join(root, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    expect(await resolveInside(root, '/lib64/ld-linux-x86-64.so.2', memo)).toBe(ld);
    expect(await resolveInside(root, '/etc/missing', memo)).toBeUndefined();
    expect(memo.get(join(root, 'lib64'))).toBe('');
    expect(memo.get(join(root, 'lib64/ld-linux-x86-64.so.2'))).toBe('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    expect(memo.get(join(root, 'etc/missing'))).toBeNull();
    // Changed on disk after: the memo answers as before, a lookup without it sees the change.
    await rm(join(root, 'lib64'), { recursive: true });
    await writeFile(join(root, 'etc/missing'), 'now here');
    expect(await resolveInside(root, '/lib64/ld-linux-x86-64.so.2', memo)).toBe(ld);
    expect(await resolveInside(root, '/etc/missing', memo)).toBeUndefined();
    expect(await resolveInside(root, '/lib64/ld-linux-x86-64.so.2')).toBeUndefined();
  });

  it('gives up on a link loop', async () => {
    await symlink('/etc/b', join(root, 'etc/a'));
    await symlink('/etc/a', join(root, 'etc/b'));
    expect(await resolveInside(root, '/etc/a')).toBeUndefined();
  });
});

describe('readInside', () => {
  it('reads a regular file up to the bound, through links', async () => {
    expect(await readInside(root, '/lib64/ld-linux-x86-64.so.2', 8 << 20)).toBe(3 << 20);
    expect(await readInside(root, '/lib64/ld-linux-x86-64.so.2', 5000)).toBe(5000);
    expect(await readInside(root, '/etc/group', 8 << 20)).toBe(10);
  });

  it('reads nothing of what is missing, a directory or a FIFO (whose open would wait for a writer)', async () => {
    execFileSync('mkfifo', [join(root, 'etc/fifo')]);
    expect(await readInside(root, '/etc/missing', 1 << 20)).toBe(0);
    expect(await readInside(root, '/etc', 1 << 20)).toBe(0);
    expect(await readInside(root, '/etc/fifo', 1 << 20)).toBe(0);
  });

  it('reads nothing of a file `once` holds, by resolved path or inode, and adds what it reads', async () => {
    const once = new Set<string>();
    expect(await readInside(root, '/lib64/ld-linux-x86-64.so.2', 4096, undefined, once)).toBe(4096);
    expect(await readInside(root, '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', 4096, undefined, once)).toBe(0);
    await link(join(root, 'etc/group'), join(root, 'etc/group-'));
    expect(await readInside(root, '/etc/group-', 4096, undefined, once)).toBe(10);
    expect(await readInside(root, '/etc/group', 4096, undefined, once)).toBe(0);
    expect(once.size).toBe(4);
  });
});

describe('ReadThrough', () => {
  it('reads queued files once each, only after start(), and stop() waits for the read in progress', async () => {
    const rt = new ReadThrough(root, { maxFileBytes: 1 << 20 });
    rt.add('/etc/group');
    rt.add('/etc/group');
    await new Promise((r) => setTimeout(r, 20));
    expect(rt.stats.files).toBe(0);
    rt.start();
    rt.add('/lib64/ld-linux-x86-64.so.2');
    rt.add('/etc/missing');
    await new Promise((r) => setTimeout(r, 50));
    const stats = await rt.stop();
    expect(stats).toEqual({
      files: 2,
      bytes: 10 + (1 << 20),
      failed: 0,
      paths: ['/etc/group', '/lib64/ld-linux-x86-64.so.2'],
    });
    rt.add('/etc/passwd');
    expect((await rt.stop()).files).toBe(2);
  });

  it('reads a file named by several paths once: through a link, a linked folder, or a hard link', async () => {
    // Merged /usr, as in Debian: /lib is a link to usr/lib.
    await mkdir(join(root, 'usr'));
    await rename(join(root, 'lib'), join(root, 'usr/lib'));
    await symlink('usr/lib', join(root, 'lib'));
    await link(join(root, 'etc/group'), join(root, 'etc/group-'));
    await writeFile(join(root, 'etc/last'), 'x');
    const rt = new ReadThrough(root, { maxFileBytes: 8 << 20 });
    rt.start();
    for (const p of [
      '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      '/lib64/ld-linux-x86-64.so.2',
      '/etc/group',
      '/etc/group-',
      '/etc/last', // read last: the queue is done then
    ])
      rt.add(p);
    for (let i = 0; i < 100 && rt.stats.files < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await rt.stop()).toEqual({
      files: 3,
      bytes: (3 << 20) + 10 + 1,
      failed: 0,
      paths: ['/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', '/etc/group', '/etc/last'],
    });
  });

  it("two mounts' read-throughs both finish (their reads take turns)", async () => {
    const a = new ReadThrough(root, { maxFileBytes: 8 << 20 });
    const b = new ReadThrough(root, { maxFileBytes: 8 << 20 });
    a.start();
    b.start();
    a.add('/lib64/ld-linux-x86-64.so.2');
    b.add('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
    b.add('/etc/group');
    for (let i = 0; i < 100 && a.stats.files + b.stats.files < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect([(await a.stop()).bytes, (await b.stop()).bytes]).toEqual([3 << 20, (3 << 20) + 10]);
  });
});
