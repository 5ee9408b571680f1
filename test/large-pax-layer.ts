// A layer tar.gz holding a 10 GiB file in PAX form (ustar size 0, the size in a PAX record, as GNU
// tar, Go's archive/tar and BuildKit write files >= 8 GiB) plus entries whose path, linkpath,
// uid/gid and mtime come from PAX records. Generated on the fly as gzip members (gunzip reads
// concatenated members as one stream) of a precompressed zero chunk: never 10 GiB on disk.

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { tarOf } from './tar-build.js';

export const GiB = 1024 ** 3;
export const CHUNK = 64 << 20;
/** Not a multiple of 512: the padding after the data is exercised too. */
export const BIG = 10 * GiB + 1234;
export const MARKS: [number, string][] = [
  [0, 'BEGIN'],
  [5 * GiB + 4097, 'MIDDLE'],
  [BIG - 6, 'END!!\n'],
];
export const LONG_DIR = `dir-${'p'.repeat(120)}`;
export const LONG_TARGET = `target-${'t'.repeat(150)}`;

/** The big file's bytes at chunk `k` (marks applied), or undefined for a whole chunk of zeros. */
export function bigFileChunk(k: number): Buffer | undefined {
  const start = k * CHUNK;
  const len = Math.min(CHUNK, BIG - start);
  const marks = MARKS.filter(([at]) => at >= start && at < start + len);
  if (marks.length === 0 && len === CHUNK) return undefined;
  const b = Buffer.alloc(len);
  for (const [at, text] of marks) b.write(text, at - start, 'latin1');
  return b;
}

/** The plain tar's pieces: the headers before the big file, its data chunks, then the rest. */
function* plainPieces(): Generator<{ plain: Uint8Array; gzip?: Uint8Array }> {
  const headers = tarOf([
    { name: 'd', type: '5', mode: 0o755 },
    // PAX path (longer than ustar's 100 + 155), uid/gid beyond the octal field, fractional mtime.
    {
      name: 'short-name',
      type: '0',
      data: Buffer.from('owned\n'),
      pax: { path: `${LONG_DIR}/${'f'.repeat(200)}`, uid: '3000000', gid: '4000000', mtime: '1700000000.25' },
    },
    { name: 'ln', type: '2', linkname: 'short', pax: { linkpath: LONG_TARGET } },
    // The 10 GiB file: ustar size 0, PAX size the real one (what GNU tar writes).
    { name: 'big', type: '0', size: 0, pax: { size: String(BIG), mtime: '1600000000' } },
  ]).subarray(0, -1024); // without the end-of-archive blocks: the big file's data follows
  yield { plain: headers };
  const zero = new Uint8Array(CHUNK);
  const zeroMember = gzipSync(zero, { level: 1 });
  for (let k = 0; k * CHUNK < BIG; k++) {
    const c = bigFileChunk(k);
    yield c ? { plain: c } : { plain: zero, gzip: zeroMember };
  }
  yield {
    plain: Buffer.concat([
      new Uint8Array((512 - (BIG % 512)) % 512),
      tarOf([{ name: 'after.txt', type: '0', data: Buffer.from('after the big file\n'), mode: 0o600 }]),
    ]),
  };
}

/** Write the layer (one gzip member per piece) to `path`; returns the plain tar's digest (diff_id). */
export async function writeLayer(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(function* () {
    for (const p of plainPieces()) {
      hash.update(p.plain);
      yield p.gzip ?? gzipSync(p.plain, { level: 1 });
    }
  }, createWriteStream(path));
  return `sha256:${hash.digest('hex')}`;
}
