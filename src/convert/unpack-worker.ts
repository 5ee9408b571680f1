// Worker-thread entry of unpack.ts: read one layer blob file (checking its digest when asked),
// undo its compression, hash the tar, and post the tar to the main thread in transferred chunks,
// never more than `window` chunks ahead of what the main thread has taken. The job is the first
// message (the thread may be started before it is known, unpack-thread.ts); numbers after it are
// credits. Not to be imported.

import { parentPort } from 'node:worker_threads';
import { decompress } from '../ext4/decompress.js';
import { reusedFileChunks, verifiedFileStream } from '../oci/blob-file.js';
import { Digester } from '../oci/digest.js';
import type { UnpackJob, UnpackReply } from './unpack.js';

const port =
  parentPort ??
  (() => {
    throw new Error('unpack-worker: not running in a worker thread');
  })();

let credits = 0;
let wake: (() => void) | undefined;
port.on('message', (m: number | UnpackJob) => {
  if (typeof m !== 'number') {
    credits += m.window;
    void unpack(m);
    return;
  }
  credits += m;
  wake?.();
  wake = undefined;
});
const credit = async (): Promise<void> => {
  while (credits === 0) await new Promise<void>((r) => (wake = r));
  credits--;
};

async function post(chunk: Uint8Array): Promise<void> {
  await credit();
  const reply: UnpackReply = { chunk: chunk.buffer as ArrayBuffer, length: chunk.length };
  port.postMessage(reply, [chunk.buffer as ArrayBuffer]);
}

async function unpack(job: UnpackJob): Promise<void> {
  try {
    // Read into a few reused buffers: decompress() hands each to zlib's stream, which is done with a
    // chunk before it takes the next; a plain tar's chunks are posted (copied or transferred) below.
    const chunks = reusedFileChunks(job.path);
    const source = job.verify ? verifiedFileStream(job.path, job.verify, chunks) : chunks;
    const tar = new Digester();
    for await (const c of decompress(source, job.name)) {
      tar.update(c);
      // Posted as it came: the ext4 writer's writes follow the chunks, and the converted bytes must
      // not depend on where the tar is decoded. A chunk that is its whole buffer goes as it is (zlib
      // starts a new buffer after a full one); one sharing its buffer goes as a copy.
      const whole = c.byteOffset === 0 && c.byteLength === c.buffer.byteLength && c.buffer instanceof ArrayBuffer;
      await post(whole ? c : new Uint8Array(c));
    }
    const reply: UnpackReply = { end: { digest: tar.digest(), size: tar.size } };
    port.postMessage(reply);
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    const reply: UnpackReply = {
      error: { code: typeof err?.code === 'string' ? err.code : undefined, message: String(err?.message ?? e) },
    };
    port.postMessage(reply);
  } finally {
    port.unref(); // the credit listener no longer keeps this thread alive: it ends once replies are out
  }
}
