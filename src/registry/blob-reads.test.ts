// The blob-read role against a fake transport: HEAD sizes, exact range reads (and a server that
// ignores Range), verified whole GETs, streams that resume after a broken body and check the digest.

import { describe, expect, it } from 'vitest';
import { sha256Of } from '../oci/digest.js';
import { BlobReads } from './blob-reads.js';
import { FakeHttp, type FakeReply, MemoryRegistry } from './testing.js';

const repo = { registry: 'reg.test', repository: 'app' };
const DATA = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251));

function setup() {
  const reg = new MemoryRegistry();
  const digest = reg.putBlob('app', DATA);
  const http = new FakeHttp(reg.route);
  return { reg, http, digest, reads: new BlobReads(http) };
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe('BlobReads', () => {
  it('HEAD gives the size, undefined when absent; size() names the blob when absent', async () => {
    const { digest, reads } = setup();
    expect(await reads.stat(repo, digest)).toBe(DATA.length);
    const absent = sha256Of(Buffer.from('absent'));
    expect(await reads.stat(repo, absent)).toBeUndefined();
    await expect(reads.size(repo, absent)).rejects.toThrow(`reg.test/app@${absent}: blob not found`);
  });

  it('reads exact ranges into the caller buffer, short only at the end', async () => {
    const { http, digest, reads } = setup();
    const buf = Buffer.alloc(1000);
    expect(await reads.read(repo, digest, buf, 4321)).toBe(1000);
    expect(buf.equals(DATA.subarray(4321, 5321))).toBe(true);
    expect(http.requests.at(-1)!.headers?.range).toBe('bytes=4321-5320');
    expect(await reads.read(repo, digest, buf, DATA.length - 10)).toBe(10);
    expect(buf.subarray(0, 10).equals(DATA.subarray(DATA.length - 10))).toBe(true);
    expect(reads.stats).toMatchObject({ rangeReads: 2, rangeBytes: 1010, fullBodyFallbacks: 0 });
    await expect(reads.read(repo, digest, buf, DATA.length + 5)).rejects.toMatchObject({ code: 'ERANGE' });
  });

  it('takes the slice from a whole-blob 200 when the server ignores Range, and counts it', async () => {
    const { reg, http, digest } = setup();
    const warnings: string[] = [];
    const reads = new BlobReads(http, { log: (_l, m) => warnings.push(m) });
    http.route = (req) => reg.route({ ...req, headers: {} });
    const buf = Buffer.alloc(300);
    expect(await reads.read(repo, digest, buf, 9800)).toBe(200);
    expect(buf.subarray(0, 200).equals(DATA.subarray(9800))).toBe(true);
    expect(await reads.read(repo, digest, buf, 100)).toBe(300);
    expect(buf.equals(DATA.subarray(100, 400))).toBe(true);
    expect(reads.stats.fullBodyFallbacks).toBe(2);
    expect(warnings).toHaveLength(1);
  });

  it('retries a Content-Range that is not the one asked for, then fails with EIO', async () => {
    const { reg, http, digest, reads } = setup();
    http.route = async (req) => {
      const r = await reg.route(req);
      return { ...r, headers: { ...r.headers, 'content-range': `bytes 0-99/${DATA.length}` } };
    };
    await expect(reads.read(repo, digest, Buffer.alloc(100), 500)).rejects.toThrow(/answered Content-Range/);
    expect(http.requests).toHaveLength(3);
  });

  it('fetches whole blobs with the digest checked, and parses configs with the size checked', async () => {
    const { reg, http, digest, reads } = setup();
    expect((await reads.fetch(repo, digest)).equals(DATA)).toBe(true);
    const cfg = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
    );
    const cfgDigest = reg.putBlob('app', cfg);
    const c = await reads.imageConfig(repo, { digest: cfgDigest, size: cfg.length });
    expect(c.config.architecture).toBe('amd64');
    expect(c.bytes.equals(cfg)).toBe(true);
    await expect(reads.imageConfig(repo, { digest: cfgDigest, size: cfg.length + 1 })).rejects.toThrow(
      /config is \d+ bytes, the manifest says/,
    );
    http.route = () => ({ status: 200, body: Buffer.from('not the blob') });
    await expect(reads.fetch(repo, digest)).rejects.toMatchObject({ code: 'ECORRUPT' });
  });

  it('streams a blob, resuming with a Range request where a broken body stopped', async () => {
    const { reg, http, digest, reads } = setup();
    let broken = 0;
    http.route = async (req): Promise<FakeReply> => {
      const r = await reg.route(req);
      if (broken++ < 2 && r.body && !Array.isArray(r.body)) {
        // The body stops a third of the way through what was announced.
        const b = r.body as Buffer;
        return { ...r, body: [b.subarray(0, 1500), b.subarray(1500, Math.floor(b.length / 3))] };
      }
      return r;
    };
    expect((await collect(reads.stream(repo, digest))).equals(DATA)).toBe(true);
    expect(http.requests.map((r) => r.headers?.range)).toEqual([undefined, 'bytes=3333-', 'bytes=5555-']);
    expect(reads.stats.blobBytes).toBe(DATA.length);
  });

  it('a stream whose bytes do not hash to the digest fails at the end with ECORRUPT', async () => {
    const { http, digest, reads } = setup();
    const bad = Buffer.from(DATA);
    bad[5000] ^= 1;
    http.route = () => ({ status: 200, headers: { 'content-length': String(bad.length) }, body: bad });
    await expect(collect(reads.stream(repo, digest))).rejects.toMatchObject({ code: 'ECORRUPT' });
  });
});
