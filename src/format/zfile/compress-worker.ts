// Worker-thread entry of the ZFile compression pool (compress-pool.ts): loads the codecs (native
// addons) in this thread, then compresses batches of blocks posted by the main thread and posts the
// results back, transferring every buffer in both directions; or hashes a file's chunks. Not to be
// imported.

import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { batchBound, compressBatch } from './blocks.js';
import { codecFor } from './codec.js';
import type { CompressJob, CompressReply, HashJob, HashReply } from './compress-pool.js';

const port = parentPort;
if (!port) throw new Error('compress-worker: not running in a worker thread');

/** This thread's own output buffer for `spill` jobs. */
let own: ArrayBuffer | undefined;
/** This thread's read buffer for hash jobs (one chunk). */
let chunkBuf: Buffer | undefined;

/** An error as a reply carries it (its code, when it has one, and its message). */
function replyError(e: unknown): { code?: string; message: string } {
  const err = e as { code?: unknown; message?: unknown };
  return { code: typeof err?.code === 'string' ? err.code : undefined, message: String(err?.message ?? e) };
}

/** The sha256 of every chunk of the file at `path`, read with one buffer, and the bytes read. */
function hashChunks(path: string, chunkSize: number): { digests: Uint8Array; size: number } {
  if (chunkBuf?.length !== chunkSize) chunkBuf = Buffer.allocUnsafeSlow(chunkSize);
  const buf = chunkBuf;
  const digests: Buffer[] = [];
  let size = 0;
  const fd = openSync(path, 'r');
  try {
    for (let fill = chunkSize; fill === chunkSize; ) {
      fill = 0;
      for (let n = -1; fill < chunkSize && n !== 0; fill += n)
        n = readSync(fd, buf, fill, chunkSize - fill, size + fill);
      if (fill > 0) digests.push(createHash('sha256').update(buf.subarray(0, fill)).digest());
      size += fill;
    }
  } finally {
    closeSync(fd);
  }
  return { digests: new Uint8Array(Buffer.concat(digests)), size };
}

port.on('message', (job: CompressJob | HashJob) => {
  if ('hash' in job) {
    let reply: HashReply;
    try {
      reply = { id: job.id, ...hashChunks(job.hash.path, job.hash.chunkSize) };
    } catch (e) {
      reply = { id: job.id, error: replyError(e) };
    }
    port.postMessage(reply);
    return;
  }
  let output = job.spill ? own : job.output;
  try {
    const codec = codecFor(job.algorithm);
    const src = new Uint8Array(job.input, 0, job.length);
    const need = batchBound(codec, job.blockSize, job.length);
    if (!output || output.byteLength < need) output = new ArrayBuffer(need);
    const r = compressBatch(codec, job.blockSize, job.verify, src, new Uint8Array(output));
    const lengths = r.lengths.buffer as ArrayBuffer;
    if (job.spill) {
      own = output;
      const offset = Number(Atomics.add(job.spill.end, 0, BigInt(r.length)));
      for (let done = 0; done < r.length; ) {
        done += writeSync(
          job.spill.fd,
          new Uint8Array(output, done, r.length - done),
          0,
          r.length - done,
          offset + done,
        );
      }
      const reply: CompressReply = { id: job.id, input: job.input, offset, length: r.length, lengths: r.lengths };
      port.postMessage(reply, [job.input, lengths]);
      return;
    }
    const reply: CompressReply = { id: job.id, input: job.input, output, length: r.length, lengths: r.lengths };
    port.postMessage(reply, [job.input, output, lengths]);
  } catch (e) {
    const reply: CompressReply = { id: job.id, input: job.input, error: replyError(e) };
    port.postMessage(reply, [job.input]);
  }
});
port.postMessage({ ready: true });
