import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSpec, launchFiles, mergeEnv, resolveArgs, resolveUser } from './bundle.js';
import { MAX_LAUNCH_ARG_LENGTH, MAX_LAUNCH_ARGS } from './protocol.js';

describe('bundle', () => {
  let rootfs: string;
  beforeAll(async () => {
    rootfs = await mkdtemp(join(tmpdir(), 'dadi-bundle-'));
    await mkdir(join(rootfs, 'etc'));
    await writeFile(
      join(rootfs, 'etc/passwd'),
      'root:x:0:0:root:/root:/bin/sh\n# comment\nwww:x:33:33:www:/var/www:/usr/sbin/nologin\n',
    );
    await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nwww:x:33:\nadm:x:4:www,other\nweb:x:80:\n');
  });
  afterAll(() => rm(rootfs, { recursive: true, force: true }));

  it('combines Entrypoint and Cmd like docker', () => {
    const img = { Entrypoint: ['/ep'], Cmd: ['a', 'b'] };
    expect(resolveArgs(img)).toEqual(['/ep', 'a', 'b']);
    expect(resolveArgs(img, ['c'])).toEqual(['/ep', 'c']);
    expect(resolveArgs(img, undefined, ['/other'])).toEqual(['/other']);
    expect(resolveArgs({ Cmd: ['sh'] })).toEqual(['sh']);
    expect(() => resolveArgs({})).toThrow(/no command/);
  });

  it("names the command's candidates and its first arguments, within the launch request's bounds", () => {
    const launch = launchFiles({ image: { Env: ['PATH=/usr/bin:/bin'] }, cmd: ['python3', '-c', 'import json'] });
    expect(launch?.exec).toEqual(['/usr/bin/python3', '/bin/python3']);
    expect(launch?.args).toEqual(['-c', 'import json']);
    const many = Array.from({ length: MAX_LAUNCH_ARGS + 5 }, (_, i) => `a${i}`);
    expect(launchFiles({ cmd: ['/bin/echo', ...many] })?.args).toHaveLength(MAX_LAUNCH_ARGS);
    // A longer argument ends the list (what follows it would be read out of place).
    const long = 'x'.repeat(MAX_LAUNCH_ARG_LENGTH + 1);
    expect(launchFiles({ cmd: ['/bin/echo', 'a', long, 'b'] })?.args).toEqual(['a']);
  });

  it('merges env, later wins', () => {
    expect(mergeEnv(['PATH=/a', 'X=1'], ['X=2', 'Y=3'], null)).toEqual(['PATH=/a', 'X=2', 'Y=3']);
  });

  it('resolves users and groups from the rootfs', async () => {
    expect(await resolveUser(rootfs, '')).toEqual({ uid: 0, gid: 0, home: '/root' });
    expect(await resolveUser(rootfs, 'www')).toEqual({ uid: 33, gid: 33, additionalGids: [4], home: '/var/www' });
    expect(await resolveUser(rootfs, 'www:web')).toEqual({ uid: 33, gid: 80, home: '/var/www' });
    expect(await resolveUser(rootfs, '33:4')).toEqual({ uid: 33, gid: 4, home: '/var/www' });
    expect(await resolveUser(rootfs, '1234')).toEqual({ uid: 1234, gid: 0, home: '/' });
    expect(await resolveUser(rootfs, '1234:5')).toEqual({ uid: 1234, gid: 5, home: '/' });
    await expect(resolveUser(rootfs, 'nobody')).rejects.toThrow(/no such user/);
    await expect(resolveUser(rootfs, 'www:nogroup')).rejects.toThrow(/no such group/);
    // No /etc/passwd at all: numeric ids still work.
    expect(await resolveUser(join(rootfs, 'missing'), '5:6')).toEqual({ uid: 5, gid: 6, home: '/' });
  });

  it('builds a docker-like spec', async () => {
    const spec = await buildSpec({
      rootfs,
      image: { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], WorkingDir: '/srv', User: 'www' },
      env: ['A=2'],
      hostname: 'h1',
      readonlyRootfs: true,
      cgroupsPath: '/dadi/c1',
    });
    expect(spec.process.args).toEqual(['sh']);
    expect(spec.process.env).toEqual(['PATH=/bin', 'A=2', 'HOSTNAME=h1', 'HOME=/var/www']);
    expect(spec.process.cwd).toBe('/srv');
    expect(spec.process.user).toEqual({ uid: 33, gid: 33, additionalGids: [4] });
    expect(spec.process.terminal).toBe(false);
    expect(spec.process.capabilities.bounding).toContain('CAP_NET_BIND_SERVICE');
    expect(spec.process.capabilities.bounding).not.toContain('CAP_SYS_ADMIN');
    expect(spec.root).toEqual({ path: rootfs, readonly: true });
    expect(spec.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(spec.linux.cgroupsPath).toBe('/dadi/c1');
    expect(spec.mounts.map((m) => m.destination)).toEqual([
      '/proc',
      '/dev',
      '/dev/pts',
      '/dev/shm',
      '/dev/mqueue',
      '/sys',
      '/sys/fs/cgroup',
    ]);
    await expect(buildSpec({ rootfs, image: { Cmd: ['x'], WorkingDir: 'rel' } })).rejects.toThrow(/not absolute/);
  });
});
