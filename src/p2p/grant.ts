// Grants: the root's signed statement that a host may read a blob (it checked the host's registry
// credentials against the registry). Peers serve a chunk only to a request carrying a valid grant
// for that blob, so no host gets bytes it could not read from the registry, and credentials never
// leave the path agent → root. Ed25519; the root's public key travels in every join answer.
// Pure apart from the signature maths: `now` is passed in.
//
//   const keys = newGrantKeys();
//   const g = signGrant(keys.privateKey, { digest, host: 'h1', expiresAt: now + 600_000 });
//   checkGrant(keys.publicKeyPem, g, digest, now)   // → undefined when valid, else why not

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';

export interface GrantClaims {
  /** The blob digest the grant is for. */
  digest: string;
  /**
   * The host it was issued to (for logs; any holder may present it). Absent from the grants the
   * root shares between every host of a blob (signing one per join was a sixth of a join's CPU).
   */
  host?: string;
  /** Milliseconds since the epoch after which it is void. */
  expiresAt: number;
}

/** Longest grant accepted, in characters (bounded before decoding). */
const MAX_GRANT_CHARS = 2048;

export function newGrantKeys(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The public key PEM of a private key PEM. */
export function publicKeyOf(privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
}

export function signGrant(privateKey: KeyObject | string, claims: GrantClaims): string {
  const payload = Buffer.from(JSON.stringify({ d: claims.digest, h: claims.host, e: claims.expiresAt }));
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  return `${payload.toString('base64url')}.${sign(null, payload, key).toString('base64url')}`;
}

/** Why `grant` does not let its holder read `digest` at `now`, or undefined when it does. */
export function checkGrant(
  publicKey: KeyObject | string,
  grant: string | undefined,
  digest: string,
  now: number,
): string | undefined {
  const v = verifyGrant(publicKey, grant);
  return 'why' in v ? v.why : claimsProblem(v.claims, digest, now);
}

type SignedClaims = { d?: unknown; e?: unknown };

/** The claims of a grant whose signature is this root's, or why it is not one. */
function verifyGrant(
  publicKey: KeyObject | string,
  grant: string | undefined,
): { claims: SignedClaims } | { why: string } {
  if (!grant) return { why: 'no grant' };
  if (grant.length > MAX_GRANT_CHARS) return { why: 'grant too long' };
  const dot = grant.indexOf('.');
  if (dot < 0) return { why: 'malformed grant' };
  const payload = Buffer.from(grant.slice(0, dot), 'base64url');
  const signature = Buffer.from(grant.slice(dot + 1), 'base64url');
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  let good = false;
  try {
    good = verify(null, payload, key, signature);
  } catch {
    good = false;
  }
  if (!good) return { why: 'grant not signed by this root' };
  try {
    const claims = JSON.parse(payload.toString('utf8')) as unknown;
    if (claims !== null && typeof claims === 'object') return { claims: claims as SignedClaims };
  } catch {
    // Answered below.
  }
  return { why: 'malformed grant' };
}

function claimsProblem(claims: SignedClaims, digest: string, now: number): string | undefined {
  if (claims.d !== digest) return `grant is for another blob (${String(claims.d)})`;
  if (typeof claims.e !== 'number' || claims.e <= now) return 'grant expired';
  return undefined;
}

/**
 * checkGrant for a server that sees the same grants again and again (the root: every chunk and
 * report of a host carries its grant): a grant whose signature was verified once is remembered by
 * its exact text, so later checks only compare its blob and expiry (an Ed25519 verification per
 * chunk request was a tenth of the root's CPU per served chunk). At most `max` are remembered, the
 * oldest forgotten first; a forgotten one is simply verified again.
 */
export class GrantChecker {
  private readonly verified = new Map<string, SignedClaims>();

  constructor(
    private readonly publicKey: KeyObject,
    private readonly max = 10_000,
  ) {}

  check(grant: string | undefined, digest: string, now: number): string | undefined {
    const known = grant === undefined ? undefined : this.verified.get(grant);
    if (known) return claimsProblem(known, digest, now);
    const v = verifyGrant(this.publicKey, grant);
    if ('why' in v) return v.why;
    this.verified.set(grant!, v.claims);
    if (this.verified.size > this.max) this.verified.delete(this.verified.keys().next().value!);
    return claimsProblem(v.claims, digest, now);
  }
}
