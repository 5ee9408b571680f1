// A layer's tar, as the converter reads it: decompressed and hashed (for the diff_id check) on a
// worker thread when the layer is a local file, so that gunzip and both sha256s overlap with the
// ext4 apply on the main thread instead of running between its steps; inline (same bytes, same
// errors) when the layer only comes as a stream. The worker runs up to `window` chunks ahead, so
// a later layer can be started while an earlier one is still applied, in bounded memory.

import type { Worker } from 'node:worker_threads';
import { DadiError, type DadiErrorCode } from '../errors.js';
import { decompress } from '../ext4/decompress.js';
import { type Digest, Digester } from '../oci/digest.js';
import { Tap } from '../util/tap.js';
import { unpackThread } from './unpack-thread.js';

export interface LayerTar extends AsyncIterable<Uint8Array> {
  /** Read whatever the consumer left (the tar's end padding); the whole tar's digest and size. */
  finish(): Promise<{ digest: Digest; size: number }>;
  /** Stop reading; errors of the source are dropped. */
  close(): Promise<void>;
}

/** What the worker is asked to do (its first message). */
export interface UnpackJob {
  path: string;
  /** Names the layer in errors. */
  name: string;
  /** Check the file's size and digest (a layout's blob, read in place). */
  verify?: { digest: string; size?: number };
  /** Chunks posted ahead of the consumer at most. */
  window: number;
}

/** One message of the worker. */
export type UnpackReply =
  | { chunk: ArrayBuffer; length: number }
  | { end: { digest: Digest; size: number } }
  | { error: { code?: string | undefined; message: string } };

/** Up to 64 MiB of tar decoded ahead of the apply (zlib's chunks: 256 KiB at most). */
const WINDOW = 256;
/** Chunks taken before telling the worker (one message per chunk would cost more than it says). */
const CREDIT_EVERY = 16;

const ERROR_CODES: ReadonlySet<string> = new Set<DadiErrorCode>([
  'EFORMAT',
  'ECORRUPT',
  'ERANGE',
  'ENOTFOUND',
  'EEXIST',
  'EINVAL',
  'EIO',
  'EAUTH',
  'ETIMEDOUT',
  'EUNSUPPORTED',
]);

/** The tar of the layer file at `path` (gzip, zstd or plain), decoded on a worker thread. */
export function unpackLayerFile(path: string, name: string, verify?: { digest: string; size?: number }): LayerTar {
  const job: UnpackJob = { path, name, window: WINDOW, ...(verify ? { verify } : {}) };
  return new WorkerTar(job);
}

/** The tar of a layer stream, decoded on this thread. */
export function unpackStream(stream: AsyncIterable<Uint8Array>, name: string): LayerTar {
  const raw = new Tap(stream, () => {});
  const plain = new Digester();
  const tar = new Tap(decompress(raw, name), (c) => plain.update(c));
  return {
    [Symbol.asyncIterator]: () => tar[Symbol.asyncIterator](),
    finish: async () => {
      await tar.drain();
      return { digest: plain.digest(), size: plain.size };
    },
    close: () => raw.close(),
  };
}

class WorkerTar implements LayerTar {
  private readonly worker: Worker;
  private readonly chunks: Uint8Array[] = [];
  private end: { digest: Digest; size: number } | undefined;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  /** Chunks taken since the worker was last told. */
  private taken = 0;

  constructor(job: UnpackJob) {
    this.worker = unpackThread();
    this.worker.on('message', (m: UnpackReply) => {
      if ('chunk' in m) this.chunks.push(new Uint8Array(m.chunk, 0, m.length));
      else if ('end' in m) this.end = m.end;
      else {
        const code = m.error.code && ERROR_CODES.has(m.error.code) ? (m.error.code as DadiErrorCode) : 'EIO';
        this.failure ??= new DadiError(code, m.error.message);
      }
      this.notify();
    });
    this.worker.on('error', (e) => {
      this.failure ??= new DadiError('EIO', `${job.name}: unpack worker: ${e.message}`, { cause: e });
      this.notify();
    });
    this.worker.on('exit', (code) => {
      if (!this.end && !this.closed)
        this.failure ??= new DadiError('EIO', `${job.name}: unpack worker exited (${code})`);
      this.notify();
    });
    this.worker.postMessage(job);
  }

  private notify(): void {
    this.wake?.();
    this.wake = undefined;
  }

  /** The next chunk, or undefined at the end of the tar. */
  private async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      const c = this.chunks.shift();
      if (c) {
        if (++this.taken === CREDIT_EVERY) {
          this.worker.postMessage(this.taken); // that many more chunks may be posted
          this.taken = 0;
        }
        return c;
      }
      if (this.failure) throw this.failure;
      if (this.end) return undefined;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async () => {
        const value = await this.next();
        return value ? { done: false, value } : { done: true, value: undefined };
      },
      // The consumer stopping early does not stop the worker: finish() or close() decides.
      return: async () => ({ done: true, value: undefined }),
    };
  }

  async finish(): Promise<{ digest: Digest; size: number }> {
    while ((await this.next()) !== undefined) {}
    return this.end!;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}
