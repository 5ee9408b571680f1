// The upload role against a fake transport: skip what exists, mount across repositories (and
// cancel a declined mount), monolithic and chunked pushes, restart after a failed chunk, a lost
// final answer, and uploads through a Sink.

import { describe, expect, it } from 'vitest';
import { MemoryFile } from '../blockfile/memory.js';
import { sha256Of } from '../oci/digest.js';
import { BlobReads } from './blob-reads.js';
import { BlobUploads } from './blob-uploads.js';
import { FakeHttp, MemoryRegistry } from './testing.js';

const repo = { registry: 'reg.test', repository: 'app' };
const DATA = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 13) % 251));
const DIGEST = sha256Of(DATA);

function setup(chunk = 4096) {
  const reg = new MemoryRegistry();
  const http = new FakeHttp(reg.route);
  const uploads = new BlobUploads(http, new BlobReads(http), { uploadChunkBytes: chunk });
  return { reg, http, uploads };
}

describe('BlobUploads', () => {
  it('pushes a small blob in one PUT and a large one in PATCHes, following each new session URL', async () => {
    const { reg, http, uploads } = setup(4096);
    const small = DATA.subarray(0, 4096);
    expect(await uploads.push(repo, small)).toEqual({ digest: sha256Of(small), size: 4096, how: 'uploaded' });
    expect(http.log()).toEqual([
      `HEAD /v2/app/blobs/${sha256Of(small)}`,
      'POST /v2/app/blobs/uploads/',
      'PUT /v2/app/blobs/uploads/s1',
    ]);
    http.requests.length = 0;
    expect(await uploads.push(repo, new MemoryFile(Buffer.from(DATA)))).toEqual({
      digest: DIGEST,
      size: DATA.length,
      how: 'uploaded',
    });
    expect(http.log()).toEqual([
      `HEAD /v2/app/blobs/${DIGEST}`,
      'POST /v2/app/blobs/uploads/',
      'PATCH /v2/app/blobs/uploads/s2',
      'PATCH /v2/app/blobs/uploads/s3',
      'PATCH /v2/app/blobs/uploads/s4',
      'PUT /v2/app/blobs/uploads/s5',
    ]);
    expect(reg.blobs.get('app')?.get(DIGEST)?.equals(DATA)).toBe(true);
    expect(uploads.stats.bytesUploaded).toBe(4096 + DATA.length);
    expect(reg.uploads.size).toBe(0);
  });

  it('skips a blob the registry has, and refuses one it has with another size', async () => {
    const { reg, http, uploads } = setup();
    reg.putBlob('app', DATA);
    expect(await uploads.push(repo, DATA)).toEqual({ digest: DIGEST, size: DATA.length, how: 'exists' });
    expect(http.log()).toEqual([`HEAD /v2/app/blobs/${DIGEST}`]);
    await expect(uploads.push(repo, DATA.subarray(1), { digest: DIGEST })).rejects.toThrow(
      /the registry has it with size 10000, ours is 9999/,
    );
  });

  it('mounts from another repository, and cancels the session the registry opens when it declines', async () => {
    const { reg, http, uploads } = setup();
    reg.putBlob('base', DATA);
    expect(await uploads.push(repo, DATA, { mountFrom: 'base' })).toMatchObject({ how: 'mounted' });
    expect(http.requests.at(-1)!.auth?.scopes).toEqual(['repository:app:pull,push', 'repository:base:pull']);
    expect(reg.blobs.get('app')?.has(DIGEST)).toBe(true);
    const other = sha256Of(Buffer.from('nowhere'));
    expect(await uploads.mount(repo, other, 'base')).toBe(false);
    expect(http.log().slice(-2)).toEqual(['POST /v2/app/blobs/uploads/', `DELETE /v2/app/blobs/uploads/s1`]);
    expect(reg.uploads.size).toBe(0);
  });

  it('restarts the whole upload after a failed chunk (PATCHes are never retried in place)', async () => {
    const { reg, http, uploads } = setup(4096);
    let failures = 1;
    http.route = (req) => {
      if (req.method === 'PATCH' && req.headers?.['content-range']?.startsWith('4096-') && failures-- > 0) {
        return { status: 400, body: Buffer.from('{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}') };
      }
      return reg.route(req);
    };
    // A 400 is not worth a restart: the error surfaces, naming the upload.
    await expect(uploads.push(repo, DATA)).rejects.toThrow(
      /upload of reg\.test\/app@sha256:[0-9a-f]+ \(bytes 4096-8191\): HTTP 400/,
    );
    failures = 1;
    http.route = (req) => {
      if (req.method === 'PATCH' && req.headers?.['content-range']?.startsWith('4096-') && failures-- > 0) {
        return { status: 500 };
      }
      return reg.route(req);
    };
    http.requests.length = 0;
    expect(await uploads.push(repo, DATA)).toMatchObject({ how: 'uploaded' });
    expect(http.log().filter((l) => l.startsWith('POST'))).toHaveLength(2);
    expect(reg.blobs.get('app')?.get(DIGEST)?.equals(DATA)).toBe(true);
  });

  it('counts a final PUT whose answer was lost as uploaded when the registry has the blob', async () => {
    const { reg, http, uploads } = setup(1 << 20);
    http.route = async (req) => {
      const r = await reg.route(req);
      return req.method === 'PUT' ? { status: 500 } : r;
    };
    expect(await uploads.push(repo, DATA)).toMatchObject({ how: 'uploaded' });
    expect(http.log().filter((l) => l.startsWith('POST'))).toHaveLength(1);
  });

  it('uploads what is written to a Sink; abort drops the session', async () => {
    const { reg, http, uploads } = setup();
    const sink = await uploads.createSink(repo, { chunkBytes: 3000 });
    for (let off = 0; off < DATA.length; off += 1234) await sink.write(DATA.subarray(off, off + 1234));
    expect(sink.position).toBe(DATA.length);
    await sink.end();
    expect(sink.result).toEqual({ digest: DIGEST, size: DATA.length });
    expect(reg.blobs.get('app')?.get(DIGEST)?.equals(DATA)).toBe(true);
    // Chunks go up once 3000 bytes are pending (3702 twice); the last 2596 ride on the PUT.
    expect(http.requests.filter((r) => r.method === 'PATCH').map((r) => r.headers?.['content-range'])).toEqual([
      '0-3701',
      '3702-7403',
    ]);
    expect(http.requests.find((r) => r.method === 'PUT')?.body).toHaveLength(2596);
    await expect(sink.write(DATA)).rejects.toThrow(/write after end/);
    const dropped = await uploads.createSink(repo);
    await dropped.write(DATA);
    await dropped.abort();
    expect(http.log().at(-1)).toMatch(/^DELETE /);
    expect(reg.uploads.size).toBe(0);
    expect(dropped.result).toBeUndefined();
  });
});
