import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  credentialsFromDockerConfig,
  credentialsFromEnv,
  defaultCredentials,
  dockerConfigPath,
  normaliseAuthKey,
  readDockerConfig,
} from './credentials.js';
import { logout } from './login.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-creds-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('docker config', () => {
  it('finds the file from DOCKER_CONFIG or HOME', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/x' })).toBe('/x/config.json');
    expect(dockerConfigPath({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
  });

  it('normalises auths keys', () => {
    expect(normaliseAuthKey('https://Reg.io:5000/v1/')).toBe('reg.io:5000');
    expect(normaliseAuthKey('reg.io')).toBe('reg.io');
  });

  it('reads auth, username/password and identity tokens', async () => {
    const cfg = {
      auths: {
        'https://a.io': { auth: Buffer.from('ua:pa:with:colons').toString('base64') },
        'b.io:5000': { username: 'ub', password: 'pb' },
        'c.io': { identitytoken: 'tok' },
      },
    };
    expect(await credentialsFromDockerConfig('a.io', cfg)).toEqual({ username: 'ua', password: 'pa:with:colons' });
    expect(await credentialsFromDockerConfig('b.io:5000', cfg)).toEqual({ username: 'ub', password: 'pb' });
    expect(await credentialsFromDockerConfig('b.io', cfg)).toBeUndefined();
    expect(await credentialsFromDockerConfig('c.io', cfg)).toEqual({ username: '<token>', password: 'tok' });
    expect(await readDockerConfig(join(dir, 'absent.json'))).toEqual({});
  });

  it('runs docker-credential helpers (credHelpers, credsStore) and treats "not found" as none', async () => {
    const bin = join(dir, 'bin');
    await import('node:fs/promises').then((f) => f.mkdir(bin, { recursive: true }));
    const helper = join(bin, 'docker-credential-daditest');
    await writeFile(
      helper,
      '#!/bin/sh\nread host\nif [ "$host" = "h.io" ]; then echo \'{"ServerURL":"h.io","Username":"hu","Secret":"hs"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
    );
    await chmod(helper, 0o755);
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      expect(await credentialsFromDockerConfig('h.io', { credHelpers: { 'h.io': 'daditest' } })).toEqual({
        username: 'hu',
        password: 'hs',
      });
      expect(await credentialsFromDockerConfig('x.io', { credsStore: 'daditest' })).toBeUndefined();
      await expect(credentialsFromDockerConfig('h.io', { credHelpers: { 'h.io': 'missing-helper' } })).rejects.toThrow(
        /h\.io: cannot run credential helper/,
      );
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it('orders explicit, env, then config; env may be limited to one host', async () => {
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ auths: { 'r.io': { username: 'cfg', password: 'c' } } }));
    const env = { DADI_REGISTRY_USER: 'envu', DADI_REGISTRY_PASSWORD: 'envp', DADI_REGISTRY_HOST: 'e.io' };
    const p = defaultCredentials({ env, dockerConfig: path });
    expect(await p('r.io')).toEqual({ username: 'cfg', password: 'c' });
    expect(await p('e.io')).toEqual({ username: 'envu', password: 'envp' });
    expect(await p('z.io')).toBeUndefined();
    expect(credentialsFromEnv('any', { DADI_REGISTRY_USER: 'a', DADI_REGISTRY_PASSWORD: 'b' })).toEqual({
      username: 'a',
      password: 'b',
    });
    const ex = defaultCredentials({ env, dockerConfig: path, explicit: { username: 'x', password: 'y' } });
    expect(await ex('r.io')).toEqual({ username: 'x', password: 'y' });
    const perHost = defaultCredentials({
      env: {},
      dockerConfig: false,
      explicit: { 'q.io': { username: 'q', password: 'w' } },
    });
    expect(await perHost('q.io')).toEqual({ username: 'q', password: 'w' });
    expect(await perHost('r.io')).toBeUndefined();
  });

  it('logout removes matching entries and keeps the file private', async () => {
    const path = join(dir, 'logout.json');
    await writeFile(
      path,
      JSON.stringify({ auths: { 'https://r.io/v1/': { auth: 'eDp5' }, 'k.io': { auth: 'eDp5' } }, other: 1 }),
    );
    expect(await logout('r.io', { configPath: path })).toBe(true);
    expect(await readDockerConfig(path)).toEqual({ auths: { 'k.io': { auth: 'eDp5' } }, other: 1 });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await logout('r.io', { configPath: path })).toBe(false);
  });
});
