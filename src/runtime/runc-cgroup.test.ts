import { mkdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { missing, requireOrSkip } from '../../test/require.js';
import { cgroupDirs, removeCgroup } from './runc.js';

const HAVE = requireOrSkip(
  'cgroup removal tests',
  missing({ root: true, files: ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/devices'] }),
);
const PARENT = `dadi-test-cg-${process.pid}`;
const HIERARCHIES = ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/devices'];

describe.skipIf(!HAVE)('removing a container cgroup', () => {
  afterEach(async () => {
    for (const h of HIERARCHIES) {
      for (const d of [join(h, PARENT, 'a'), join(h, PARENT, 'b'), join(h, PARENT)]) {
        await rmdir(d).catch(() => {});
      }
    }
  });

  it('removes the folder in every hierarchy and keeps the shared parent for the next start', async () => {
    for (const h of HIERARCHIES) await mkdir(join(h, PARENT, 'a'), { recursive: true });
    expect(await cgroupDirs(`/${PARENT}/a`)).toEqual(
      expect.arrayContaining(HIERARCHIES.map((h) => join(h, PARENT, 'a'))),
    );

    expect(await removeCgroup(`/${PARENT}/a`)).toEqual([]);
    expect(await cgroupDirs(`/${PARENT}/a`)).toEqual([]);
    // An emptied parent stays: another container's runc may be between making it and its own folder.
    for (const h of HIERARCHIES) expect((await stat(join(h, PARENT))).isDirectory()).toBe(true);
    for (const h of HIERARCHIES) await mkdir(join(h, PARENT, 'b'));
  });

  it('answers nothing left for a cgroup already gone, and refuses paths leaving the hierarchy', async () => {
    expect(await removeCgroup(`/${PARENT}/never-made`)).toEqual([]);
    await expect(removeCgroup('/../etc')).rejects.toThrow(/bad cgroup path/);
    await expect(removeCgroup('/')).rejects.toThrow(/bad cgroup path/);
  });
});
