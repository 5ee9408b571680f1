// Reading a blob from a local file with its descriptor's checks: layouts serve blobs this way, and
// convert's unpack worker reads layout blobs with it in its own thread.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { DadiError } from '../errors.js';

/**
 * Stream the blob file at `path`; its size and digest are checked at the end (ECORRUPT from the
 * iterator, naming `path`).
 */
export async function* verifiedFileStream(
  path: string,
  desc: { digest: string; size?: number },
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let n = 0;
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(c);
    n += c.length;
    yield c;
  }
  if (desc.size !== undefined && n !== desc.size) {
    throw new DadiError('ECORRUPT', `${path}: blob is ${n} bytes, its descriptor says ${desc.size}`);
  }
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== desc.digest) throw new DadiError('ECORRUPT', `${path}: content hashes to ${got}, not ${desc.digest}`);
}
