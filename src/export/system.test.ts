import { describe, expect, it } from 'vitest';
import { findMount, findMountSync, readMounts, readMountsSync } from './system.js';

describe('the mount table', () => {
  it('reads the same entries synchronously as through the thread pool', async () => {
    const mounts = await readMounts();
    expect(mounts.length).toBeGreaterThan(0);
    expect(readMountsSync()).toEqual(mounts);
  });

  it('finds the mount at a folder either way, and nothing where none is', async () => {
    const root = findMountSync('/');
    expect(root?.mountPoint).toBe('/');
    expect(root).toEqual(await findMount('/'));
    expect(findMountSync('/proc/self')).toBeUndefined();
  });
});
