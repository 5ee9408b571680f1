import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
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
