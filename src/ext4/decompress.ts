// Detect and undo the compression of a layer stream: gzip (node:zlib), zstd (zstd-napi) or none,
// by the first bytes. Yields the decompressed bytes; corrupt input becomes a DadiError naming it,
// and an error of the source itself (a digest mismatch, a network failure) comes out unchanged.

import { createRequire } from 'node:module';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type * as Zstd from 'zstd-napi';
import { DadiError } from '../errors.js';

/**
 * zstd-napi's stream, loaded on first use: most layers are gzip, and loading it (its modules and
 * native binding) costs each thread that imports this ~20-60 ms as it starts (the conversion's
 * main thread and its unpack thread). require, not import: see util/crc32c.ts.
 */
let zstdStream: typeof Zstd.DecompressStream | undefined;
const decompressStream = (): Zstd.DecompressStream =>
  new (zstdStream ??= (createRequire(import.meta.url)('zstd-napi') as typeof Zstd).DecompressStream)();

export type Compression = 'gzip' | 'zstd' | 'none';

export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** Decompress `source` as detected from its first bytes. */
export async function* decompress(source: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < 4) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    have += r.value.length;
  }
  const first = head.length === 1 ? head[0]! : Buffer.concat(head);
  const kind = detectCompression(first);
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (first.length) yield first;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  if (kind === 'none') {
    yield* rest();
    return;
  }
  // 256 KiB output chunks: half the per-chunk overhead of the default 16 KiB (measured, ENVIRONMENT.md).
  const transform = kind === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : decompressStream();
  // pipeline, not .pipe: an error of the source must reach the consumer, not crash the process.
  let sourceError: unknown;
  const input = async function* () {
    try {
      yield* rest();
    } catch (e) {
      sourceError = e;
      throw e;
    }
  };
  const out = pipeline(input, transform, () => {});
  try {
    for await (const c of out) yield c as Uint8Array;
  } catch (e) {
    if (sourceError !== undefined) throw sourceError;
    const why = String((e as Error).message ?? e);
    throw new DadiError('EFORMAT', `${name}: bad ${kind} stream: ${JSON.stringify(why)}`, { cause: e });
  } finally {
    transform.destroy();
  }
}
