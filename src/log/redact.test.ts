import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REDACTED, redactText, redactValue } from './redact.js';

// Secrets as registries and token servers make them: opaque tokens, JWTs, passwords with symbols.
const secret = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._~+/-]{12,40}$/),
  fc
    .tuple(fc.base64String({ minLength: 8, maxLength: 40 }), fc.base64String({ minLength: 8, maxLength: 40 }))
    .map(([a, b]) => `eyJhbGciOiJSUzI1NiJ9.${a.replace(/[+/=]/g, 'x')}.${b.replace(/[+/=]/g, 'y')}`),
  fc.stringMatching(/^[A-Za-z0-9!$%*()-]{10,30}$/),
);

// Every way a credential reaches a log line in this code base (headers, URLs, JSON bodies, text).
const contexts: Array<(s: string) => string> = [
  (s) => `GET /v2/ Authorization: Bearer ${s}`,
  (s) => `authorization=Basic ${s}`,
  (s) => `{"Authorization":"Bearer ${s}"}`,
  (s) => `fetching https://user:${encodeURIComponent(s)}@registry.example:5000/v2/ failed`,
  (s) => `https://auth.example/token?service=reg&scope=repository:a:pull&access_token=${encodeURIComponent(s)}&x=1`,
  (s) => `redirected to https://blobs.example/b?X-Amz-Signature=${encodeURIComponent(s)}`,
  (s) => `http://127.0.0.1:9/p?token=${encodeURIComponent(s)}`,
  (s) => `login with password=${s} failed`,
  (s) => `token response {"token": "${s}", "expires_in": 300}`,
];

// The shape redactValue returns, for reading nested results in assertions.
type Tree = { [k: string]: Tree } & Record<string, unknown>;

describe('redaction', () => {
  it('removes a credential from every context it appears in, keeping the rest', () => {
    fc.assert(
      fc.property(secret, fc.integer({ min: 0, max: contexts.length - 1 }), (s, i) => {
        const out = redactText(contexts[i]!(s));
        expect(out).not.toContain(s);
        expect(out).not.toContain(encodeURIComponent(s));
        expect(out).toContain(REDACTED);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps what carries no credential', () => {
    for (const t of [
      'mounted 2 layers on /run/dadi/c1/rootfs via /dev/loop3',
      'GET https://registry.example/v2/library/debian/blobs/sha256:abcd → 206',
      'token for 127.0.0.1:5000 from auth.example: 401 Unauthorized',
    ]) {
      expect(redactText(t)).toBe(t);
    }
  });

  it('censors secret-named fields at any depth, errors included, and bounds what it walks', () => {
    const err = Object.assign(new Error('401 from https://u:hunter2@r.example/v2/'), { token: 'tok-123456789' });
    const v = redactValue({
      req: { headers: { Authorization: 'Bearer abcdefghijkl', 'user-agent': 'dadi' }, url: 'https://r/x?token=zzz' },
      creds: [{ username: 'bob', password: 'hunter2' }],
      err,
      n: 3,
    }) as Tree;
    expect(v.req.headers).toEqual({ Authorization: REDACTED, 'user-agent': 'dadi' });
    expect(v.req.url).toBe(`https://r/x?token=${REDACTED}`);
    expect(v.creds).toEqual([{ username: 'bob', password: REDACTED }]);
    expect(v.err.token).toBe(REDACTED);
    expect(v.err.message).toBe(`401 from https://${REDACTED}@r.example/v2/`);
    expect(JSON.stringify(v)).not.toContain('hunter2');
    expect(v.n).toBe(3);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(redactValue(cyclic)).toEqual({ a: 1, self: '[…]' });
    let deep: Record<string, unknown> = { password: 'x' };
    for (let i = 0; i < 50; i++) deep = { d: deep };
    expect(JSON.stringify(redactValue(deep))).not.toContain('"x"');
  });
});
