import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { parseWwwAuthenticate, RegistryAuth, repositoryScope, type TokenHttp } from './auth.js';

describe('parseWwwAuthenticate', () => {
  it('parses a distribution Bearer challenge', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example.com/token',
          service: 'registry.example.com',
          scope: 'repository:a/b:pull,push',
        },
      },
    ]);
  });

  it('handles Basic, escapes, unquoted values, spaces and several challenges', () => {
    expect(parseWwwAuthenticate('Basic realm="x \\"y\\" z"')).toEqual([
      { scheme: 'basic', params: { realm: 'x "y" z' } },
    ]);
    expect(parseWwwAuthenticate('Basic realm=reg, Bearer realm="r" , error="invalid_token"')).toEqual([
      { scheme: 'basic', params: { realm: 'reg' } },
      { scheme: 'bearer', params: { realm: 'r', error: 'invalid_token' } },
    ]);
    expect(parseWwwAuthenticate('Negotiate abc==, Basic realm="a"')).toEqual([
      { scheme: 'negotiate', params: {}, token68: 'abc==' },
      { scheme: 'basic', params: { realm: 'a' } },
    ]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('BEARER Realm = "r"')).toEqual([{ scheme: 'bearer', params: { realm: 'r' } }]);
  });

  it('never throws on junk', () => {
    for (const s of ['"', ',,,', '=', 'Bearer realm="unterminated', 'a b c d', 'Bearer ,realm="x"']) {
      expect(() => parseWwwAuthenticate(s)).not.toThrow();
    }
  });
});

describe('RegistryAuth', () => {
  const challenge = 'Bearer realm="http://auth.test/token",service="svc one",scope="repository:a/b:pull"';

  function fakeServer(expiresIn: number | undefined, password = 'pw') {
    const calls: string[] = [];
    let n = 0;
    const http: TokenHttp = async (url, init) => {
      calls.push(url);
      const ok = init.headers.authorization === `Basic ${Buffer.from(`u:${password}`).toString('base64')}`;
      if (!ok) return { status: 401, body: '' };
      n++;
      return { status: 200, body: JSON.stringify({ token: `t${n}`, ...(expiresIn ? { expires_in: expiresIn } : {}) }) };
    };
    return { calls, http };
  }

  it('fetches a token with URL-encoded service and scope, caches it, and refreshes on expiry', async () => {
    let now = 1_000_000;
    const { calls, http } = fakeServer(100);
    const auth = new RegistryAuth(
      'reg:5000',
      async () => ({ username: 'u', password: 'pw' }),
      http,
      () => now,
    );
    const scopes = [repositoryScope('a/b', 'pull')];
    expect(await auth.header(scopes)).toBeUndefined(); // mode unknown until challenged
    await auth.challenged(challenge, scopes, undefined);
    expect(calls[0]).toBe('http://auth.test/token?service=svc+one&scope=repository%3Aa%2Fb%3Apull');
    expect(await auth.header(scopes)).toBe('Bearer t1');
    now += 80_000;
    expect(await auth.header(scopes)).toBe('Bearer t1');
    now += 15_000; // past 90 s (10 % early)
    expect(await auth.header(scopes)).toBe('Bearer t2');
    // a 401 with the current token invalidates it
    await auth.challenged(challenge, scopes, 'Bearer t2');
    expect(await auth.header(scopes)).toBe('Bearer t3');
    // another scope gets its own token
    expect(await auth.header([repositoryScope('c', 'push')])).toBe('Bearer t4');
    expect(calls[3]).toContain('scope=repository%3Ac%3Apull%2Cpush');
  });

  it('shares one token request among concurrent callers', async () => {
    const { calls, http } = fakeServer(undefined);
    const auth = new RegistryAuth('reg', async () => ({ username: 'u', password: 'pw' }), http);
    await auth.challenged(challenge, ['s1'], undefined);
    const hs = await Promise.all(Array.from({ length: 10 }, () => auth.header(['s2'])));
    expect(new Set(hs).size).toBe(1);
    expect(calls.length).toBe(2);
  });

  it('wrong password: EAUTH naming the registry, never the password', async () => {
    const { http } = fakeServer(60, 'right');
    const auth = new RegistryAuth(
      'reg.example:5000',
      async () => ({ username: 'u', password: 'hunter2-secret' }),
      http,
    );
    const e = await auth.challenged(challenge, ['s'], undefined).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DadiError);
    expect((e as DadiError).code).toBe('EAUTH');
    expect((e as DadiError).message).toContain('reg.example:5000');
    expect((e as DadiError).message).not.toContain('hunter2');
  });

  it('Basic: sends credentials after the challenge; the same header refused again is EAUTH', async () => {
    const auth = new RegistryAuth(
      'r',
      async () => ({ username: 'u', password: 'p' }),
      async () => ({ status: 500, body: '' }),
    );
    await auth.challenged('Basic realm="r"', [], undefined);
    const h = await auth.header([]);
    expect(h).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    await expect(auth.challenged('Basic realm="r"', [], h)).rejects.toMatchObject({ code: 'EAUTH' });
    const anon = new RegistryAuth(
      'r',
      async () => undefined,
      async () => ({ status: 500, body: '' }),
    );
    await expect(anon.challenged('Basic realm="r"', [], undefined)).rejects.toThrow(/no credentials/);
  });

  it('uses the refresh-token grant for identity tokens', async () => {
    let seen: { method: string; body?: string } | undefined;
    const auth = new RegistryAuth(
      'r',
      async () => ({ username: '<token>', password: 'idtok' }),
      async (_url, init) => {
        seen = init;
        return { status: 200, body: '{"access_token":"at"}' };
      },
    );
    await auth.challenged(challenge, ['repository:a:pull'], undefined);
    expect(seen?.method).toBe('POST');
    expect(new URLSearchParams(seen?.body).get('refresh_token')).toBe('idtok');
    expect(await auth.header(['repository:a:pull'])).toBe('Bearer at');
  });
});
