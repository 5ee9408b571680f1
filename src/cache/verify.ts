// Verification around the cache: the retry loop a reader runs when bytes it got fail a check
// (evict the range, read again, 3 tries, then ECORRUPT), and whole-blob digest checks.
// Not the checks themselves (ZFile block CRCs live in format/zfile).

import { createHash } from 'node:crypto';
import type { BlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import type { CachedBlob } from './blob.js';

/** Tries before giving up, as the reference's ZFile reader. */
export const VERIFY_TRIES = 3;

export interface ReadVerifiedOptions<T> {
  /** Read the bytes (through the cache). Errors it throws are not retried here. */
  read: () => Promise<T>;
  /** Check them; false means corrupt. */
  verify: (value: T) => boolean | Promise<boolean>;
  /** Drop the cached copy before the next try (e.g. `() => blob.evict(offset, length)`). */
  evict?: () => Promise<void> | void;
  /** What was read, for the error message, e.g. "layer.tar: ZFile block 12 at 53248+4096". */
  what: string;
  /** Default VERIFY_TRIES. */
  tries?: number;
  /** Told of each failed try (metrics, logs). */
  onFailure?: (attempt: number) => void;
}

/**
 * Read and verify; on a failed check evict and read again, up to `tries` times, then fail with
 * ECORRUPT naming `what`.
 *
 * @example
 *   const block = await readVerified({
 *     read: () => readExact(blob, off, len),
 *     verify: (b) => crc32c(b) === expected,
 *     evict: () => blob.evict(off, len),
 *     what: `${blob.name}: block ${i}`,
 *   });
 */
export async function readVerified<T>(opts: ReadVerifiedOptions<T>): Promise<T> {
  const tries = opts.tries ?? VERIFY_TRIES;
  for (let attempt = 1; ; attempt++) {
    const value = await opts.read();
    if (await opts.verify(value)) return value;
    opts.onFailure?.(attempt);
    if (attempt >= tries) throw new DadiError('ECORRUPT', `${opts.what}: verification failed ${tries} times`);
    await opts.evict?.();
  }
}

/** The digest (`algorithm:hex`, sha256 or sha512) of a whole BlockFile, read in `chunk`-byte reads. */
export async function digestOf(
  file: Pick<BlockFile, 'name' | 'size' | 'read'>,
  algorithm = 'sha256',
  chunk = 1 << 20,
): Promise<string> {
  const hash = createHash(algorithm);
  const buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(1, file.size)));
  for (let off = 0; off < file.size; ) {
    const n = await file.read(buf, off);
    if (n === 0) throw new DadiError('EIO', `${file.name}: short read at ${off}`);
    hash.update(buf.subarray(0, n));
    off += n;
  }
  return `${algorithm}:${hash.digest('hex')}`;
}

/**
 * Read a whole cached blob (fetching what is missing, so it ends fully cached) and check it
 * against its key. On a mismatch the blob is evicted and ECORRUPT thrown.
 */
export async function verifyBlobDigest(blob: CachedBlob): Promise<void> {
  const [algorithm] = blob.key.split(':');
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new DadiError('EUNSUPPORTED', `${blob.name}: cannot verify a ${algorithm} digest`);
  }
  const got = await digestOf(blob, algorithm);
  if (got !== blob.key) {
    await blob.evict(0, blob.size);
    throw new DadiError('ECORRUPT', `${blob.name}: content digest ${got} does not match ${blob.key}`);
  }
}
