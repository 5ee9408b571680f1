// Content digests (`sha256:<64 hex>`): compute, parse, validate, verify.
// Only sha256 is supported; other algorithms are rejected with EUNSUPPORTED.

import { createHash, type Hash } from 'node:crypto';
import { DadiError } from '../errors.js';

/** A digest string `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

/** sha256 digest of some bytes. Example: `sha256Of(Buffer.from('')) === 'sha256:e3b0…'`. */
export function sha256Of(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** True when `s` is a well-formed sha256 digest. */
export function isDigest(s: string): s is Digest {
  return SHA256_RE.test(s);
}

/**
 * Validate a digest string and return it typed; `what` names the source for the error message.
 * Throws EINVAL for malformed strings and EUNSUPPORTED for other algorithms (e.g. sha512).
 */
export function parseDigest(s: string, what = 'digest'): Digest {
  if (SHA256_RE.test(s)) return s as Digest;
  const m = DIGEST_RE.exec(s);
  if (m && m[1] !== 'sha256') {
    throw new DadiError('EUNSUPPORTED', `${what}: digest algorithm ${m[1]} is not supported (only sha256)`);
  }
  throw new DadiError('EINVAL', `${what}: not a valid digest: ${JSON.stringify(s.slice(0, 100))}`);
}

/** The hex part of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(7);
}

/** Throws ECORRUPT unless `data` hashes to `expected`. */
export function verifyDigest(data: Uint8Array, expected: Digest, what: string): void {
  const got = sha256Of(data);
  if (got !== expected) throw new DadiError('ECORRUPT', `${what}: digest mismatch: expected ${expected}, got ${got}`);
}

/** Incremental sha256 for streams. */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  private n = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.n += chunk.length;
  }
  /** Bytes hashed so far. */
  get size(): number {
    return this.n;
  }
  /** The digest (call once). */
  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}
