// Reading a blob from a local file with its descriptor's checks: layouts serve blobs this way, and
// convert's unpack worker reads layout blobs with it in its own thread.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { DadiError } from '../errors.js';

/** Bytes per read of a blob file. */
const READ_SIZE = 1 << 20;

/** The file at `path` as a stream of READ_SIZE chunks. */
export function fileStream(path: string): AsyncIterable<Uint8Array> {
  return createReadStream(path, { highWaterMark: READ_SIZE });
}

/**
 * The file at `path` in READ_SIZE chunks (only the last one shorter), read into `ring` buffers used
 * in turn: a chunk's bytes are overwritten once `ring` more chunks have been taken, so its consumer
 * must be done with it by then (zlib's stream in a pipeline is: each 1 MiB write waits for the one
 * before to be inflated). A buffer the consumer transferred away is replaced. Fresh buffers cost a
 * page fault per 4 KiB on first touch (~15-50 µs on the 2-vCPU VM): ~24,000 for a 95 MB layer.
 */
export async function* reusedFileChunks(path: string, ring = 4): AsyncGenerator<Uint8Array> {
  const buffers: Uint8Array[] = [];
  const fh = await open(path, 'r');
  try {
    for (let i = 0, pos = 0; ; i = (i + 1) % ring) {
      let buf = buffers[i];
      if (!buf || buf.buffer.byteLength === 0) buf = buffers[i] = new Uint8Array(READ_SIZE);
      let n = 0;
      while (n < READ_SIZE) {
        const { bytesRead } = await fh.read(buf, n, READ_SIZE - n, pos + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      if (n === 0) return;
      pos += n;
      yield n === READ_SIZE ? buf : buf.subarray(0, n);
      if (n < READ_SIZE) return;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Stream the blob file at `path` (as `source` reads it: fileStream by default); its size and digest
 * are checked at the end (ECORRUPT from the iterator, naming `path`).
 */
export async function* verifiedFileStream(
  path: string,
  desc: { digest: string; size?: number },
  source: AsyncIterable<Uint8Array> = fileStream(path),
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let n = 0;
  for await (const c of source) {
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
