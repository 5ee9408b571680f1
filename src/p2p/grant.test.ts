import { createPublicKey } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkGrant, GrantChecker, newGrantKeys, publicKeyOf, signGrant } from './grant.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('grants', () => {
  const keys = newGrantKeys();
  const g = signGrant(keys.privateKeyPem, { digest: D, host: 'h1', expiresAt: 1000 });

  it('accept the blob they were signed for until they expire', () => {
    expect(publicKeyOf(keys.privateKeyPem)).toBe(keys.publicKeyPem);
    expect(checkGrant(keys.publicKeyPem, g, D, 999)).toBeUndefined();
    expect(checkGrant(keys.publicKeyPem, g, D, 1000)).toBe('grant expired');
    expect(checkGrant(keys.publicKeyPem, g, `sha256:${'cd'.repeat(32)}`, 0)).toMatch(/another blob/);
    expect(checkGrant(keys.publicKeyPem, undefined, D, 0)).toBe('no grant');
    expect(checkGrant(newGrantKeys().publicKeyPem, g, D, 0)).toBe('grant not signed by this root');
  });

  it('reject any altered grant', () => {
    fc.assert(
      fc.property(fc.nat(g.length - 1), fc.integer({ min: 1, max: 127 }), (at, delta) => {
        const code = (g.charCodeAt(at) + delta) % 128;
        const bad = g.slice(0, at) + String.fromCharCode(code) + g.slice(at + 1);
        // base64url may decode two spellings of the same final bits to the same bytes: then it is the same grant.
        const same =
          Buffer.from(bad.split('.')[0] ?? '', 'base64url').equals(Buffer.from(g.split('.')[0]!, 'base64url')) &&
          Buffer.from(bad.split('.')[1] ?? '', 'base64url').equals(Buffer.from(g.split('.')[1]!, 'base64url')) &&
          bad.split('.').length === 2;
        if (!same) expect(checkGrant(keys.publicKeyPem, bad, D, 0)).toBeDefined();
      }),
    );
  });

  it('GrantChecker answers as checkGrant, also for a grant it verified before', () => {
    const checker = new GrantChecker(createPublicKey(keys.publicKeyPem), 2);
    const other = signGrant(newGrantKeys().privateKeyPem, { digest: D, host: 'h1', expiresAt: 1000 });
    const g2 = signGrant(keys.privateKeyPem, { digest: D, host: 'h2', expiresAt: 2000 });
    const g3 = signGrant(keys.privateKeyPem, { digest: D, host: 'h3', expiresAt: 3000 });
    const tamper = `${g.slice(0, -2)}${g.endsWith('AA') ? 'BA' : 'AA'}`;
    // Twice each, in an order that also makes it forget (it keeps 2): the answers never change.
    for (const round of [0, 1]) {
      for (const [grant, digest, now] of [
        [g, D, 999],
        [g, D, 1000],
        [g, `sha256:${'cd'.repeat(32)}`, 0],
        [g2, D, 1500],
        [g3, D, 2500],
        [other, D, 0],
        [tamper, D, 0],
        [undefined, D, 0],
      ] as const) {
        expect(checker.check(grant, digest, now), `round ${round}`).toBe(
          checkGrant(keys.publicKeyPem, grant, digest, now),
        );
      }
    }
  });
});
