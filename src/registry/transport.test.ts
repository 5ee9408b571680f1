// Transport and client behaviour against scripted local HTTP servers (no registry needed):
// retries, Retry-After, deadlines, 416 with a bogus Content-Length, range checks, redirects.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { sha256Of } from '../oci/digest.js';
import { parseContentRange } from './blob-reads.js';
import { RegistryClient } from './client.js';
import { parseRetryAfter } from './transport.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Array<Server | NetServer> = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(handler: Handler): Promise<string> {
  const s = createServer(handler);
  s.on('connection', (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  return `127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

/** A raw TCP server answering every request with `raw` and keeping the socket open. */
async function serveRaw(raw: string): Promise<string> {
  const s = createNetServer((c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('data', () => c.write(raw));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  return `127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

const DATA = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
const DIG = sha256Of(DATA);

function fast(extra: ConstructorParameters<typeof RegistryClient>[0] = {}) {
  return new RegistryClient({
    credentials: undefined,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    requestTimeoutMs: 1000,
    deadlineMs: 5000,
    ...extra,
  });
}

function rangeOf(req: IncomingMessage): [number, number] {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) throw new Error('no range');
  return [Number(m[1]), Number(m[2])];
}

function send206(res: ServerResponse, a: number, b: number, body = DATA.subarray(a, b + 1)) {
  res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${DATA.length}`, 'content-length': String(body.length) });
  res.end(body);
}

describe('helpers', () => {
  it('parses Content-Range and Retry-After', () => {
    expect(parseContentRange('bytes 0-9/100')).toEqual({ start: 0, end: 9, total: 100 });
    expect(parseContentRange('bytes 5-9/*')).toEqual({ start: 5, end: 9 });
    expect(parseContentRange('bytes 9-5/100')).toBeUndefined();
    expect(parseContentRange('bytes 0-100/100')).toBeUndefined();
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())).toBeGreaterThan(8000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('retries', () => {
  it('retries 503 and connection resets, then succeeds', async () => {
    let n = 0;
    const host = await serve((req, res) => {
      n++;
      if (n === 1) return void res.writeHead(503).end();
      if (n === 2) return void req.socket.destroy();
      const [a, b] = rangeOf(req);
      send206(res, a, b);
    });
    const c = fast();
    const buf = Buffer.alloc(100);
    expect(await c.readBlob({ registry: host, repository: 'r' }, DIG, buf, 10)).toBe(100);
    expect(buf.equals(DATA.subarray(10, 110))).toBe(true);
    expect(c.stats.retries).toBe(2);
    await c.close();
  });

  it('honours Retry-After on 429', async () => {
    let n = 0;
    const host = await serve((req, res) => {
      if (n++ === 0) return void res.writeHead(429, { 'retry-after': '1' }).end();
      const [a, b] = rangeOf(req);
      send206(res, a, b);
    });
    const c = fast();
    const t0 = Date.now();
    await c.readBlob({ registry: host, repository: 'r' }, DIG, Buffer.alloc(10), 0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    await c.close();
  });

  it('fails at once when Retry-After exceeds what is allowed', async () => {
    const host = await serve((_req, res) => void res.writeHead(429, { 'retry-after': '3600' }).end());
    const c = fast();
    const e = await c
      .readBlob({ registry: host, repository: 'r' }, DIG, Buffer.alloc(10), 0)
      .catch((x: DadiError) => x);
    expect(e).toMatchObject({ code: 'ETIMEDOUT' });
    expect((e as Error).message).toMatch(/retry after 3600 s/);
    await c.close();
  });

  it('gives up on a stalled server within the deadline with ETIMEDOUT', async () => {
    const host = await serve(() => {}); // never answers
    const c = fast({ requestTimeoutMs: 200, deadlineMs: 1500, maxAttempts: 100 });
    const t0 = Date.now();
    const e = await c
      .readBlob({ registry: host, repository: 'r' }, DIG, Buffer.alloc(10), 0)
      .catch((x: DadiError) => x);
    const took = Date.now() - t0;
    expect(e).toBeInstanceOf(DadiError);
    expect((e as DadiError).code).toBe('ETIMEDOUT');
    expect(took).toBeLessThan(2500);
    await c.close();
  });

  it('does not retry 404 and names the blob', async () => {
    let n = 0;
    const host = await serve((_req, res) => {
      n++;
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
    });
    const c = fast();
    await expect(c.fetchBlob({ registry: host, repository: 'r' }, DIG)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(c.readBlob({ registry: host, repository: 'r' }, DIG, Buffer.alloc(1), 0)).rejects.toThrow(
      /r@sha256:.*BLOB_UNKNOWN/,
    );
    expect(n).toBe(2);
    await c.close();
  });
});

describe('counters for metrics', () => {
  it('counts every response body byte the server sent (error bodies, chunked, dumped) and times range reads', async () => {
    let served = 0;
    let n = 0;
    const host = await serve((req, res) => {
      const body = (b: Buffer | string) => {
        served += Buffer.byteLength(b);
        res.end(b);
      };
      n++;
      if (n === 1) return void res.writeHead(503, { 'content-type': 'application/json' }).end(body('{"errors":[]}'));
      if (req.headers.range) {
        const [a, b] = rangeOf(req);
        res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${DATA.length}`, 'content-length': String(b - a + 1) });
        return void body(DATA.subarray(a, b + 1));
      }
      if (req.url?.includes('missing')) return void res.writeHead(404).end(body('{"errors":[{"code":"X"}]}'));
      // Chunked (no Content-Length): the counter sees the decoded body, not the chunk framing.
      res.writeHead(200);
      res.write(DATA.subarray(0, 300));
      served += 300;
      body(DATA.subarray(300));
    });
    const reads: Array<[number, number]> = [];
    const c = fast({ onRangeRead: (bytes, seconds) => reads.push([bytes, seconds]) });
    const repo = { registry: host, repository: 'r' };
    expect(await c.readBlob(repo, DIG, Buffer.alloc(100), 10)).toBe(100);
    expect((await c.fetchBlob(repo, DIG)).equals(DATA)).toBe(true);
    await expect(c.fetchBlob({ registry: host, repository: 'missing' }, DIG)).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
    expect(await c.readBlob(repo, DIG, Buffer.alloc(50), 900)).toBe(50);
    expect(served).toBe(13 + 100 + 1000 + 25 + 50);
    expect(c.stats.responseBytes).toBe(served);
    expect(reads.map(([b]) => b)).toEqual([100, 50]);
    expect(reads.every(([, s]) => s > 0 && s < 10)).toBe(true);
    await c.close();
  });
});

describe('range reads', () => {
  it('never trusts a 416 body length (no hang)', async () => {
    const host = await serveRaw(
      'HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Range: bytes */1000\r\nContent-Length: 1048576\r\n\r\n',
    );
    const c = fast({ requestTimeoutMs: 10_000 });
    const t0 = Date.now();
    const e = await c
      .readBlob({ registry: host, repository: 'r' }, DIG, Buffer.alloc(10), 5000)
      .catch((x: DadiError) => x);
    expect(e).toMatchObject({ code: 'ERANGE' });
    expect((e as Error).message).toMatch(/the blob has 1000 bytes/);
    expect(Date.now() - t0).toBeLessThan(2000);
    await c.close();
  });

  it('rejects a wrong or short Content-Range and a truncated body, retrying until right', async () => {
    let n = 0;
    const host = await serve((req, res) => {
      const [a, b] = rangeOf(req);
      n++;
      if (n === 1) return send206(res, a + 1, b); // wrong start
      if (n === 2) return send206(res, a, b - 5); // shorter, not at the end
      if (n === 3) {
        res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${DATA.length}`, 'content-length': String(b - a + 1) });
        res.write(DATA.subarray(a, a + 10));
        setTimeout(() => req.socket.destroy(), 10);
        return;
      }
      if (n === 4) return send206(res, a, b, Buffer.alloc(b - a + 1, 7).subarray(0, 5)); // lying Content-Length
      send206(res, a, b);
    });
    const c = fast();
    const buf = Buffer.alloc(50);
    expect(await c.readBlob({ registry: host, repository: 'r' }, DIG, buf, 100)).toBe(50);
    expect(buf.equals(DATA.subarray(100, 150))).toBe(true);
    expect(n).toBe(5);
    await c.close();
  });

  it('takes the right slice of a 200 (Range ignored) and a short read at the end', async () => {
    let mode = 'full';
    const host = await serve((req, res) => {
      if (mode === 'full') return void res.writeHead(200, { 'content-length': String(DATA.length) }).end(DATA);
      const [a] = rangeOf(req);
      send206(res, a, DATA.length - 1);
    });
    const c = fast();
    const buf = Buffer.alloc(300);
    expect(await c.readBlob({ registry: host, repository: 'r' }, DIG, buf, 600)).toBe(300);
    expect(buf.equals(DATA.subarray(600, 900))).toBe(true);
    expect(c.stats.fullBodyFallbacks).toBe(1);
    mode = 'end';
    expect(await c.readBlob({ registry: host, repository: 'r' }, DIG, buf, 900)).toBe(100);
    expect(buf.subarray(0, 100).equals(DATA.subarray(900))).toBe(true);
    await c.close();
  });

  it('verifies whole-blob digests (retrying a corrupted body)', async () => {
    let n = 0;
    const host = await serve((_req, res) => {
      const body = Buffer.from(DATA);
      if (n++ === 0) body[3] = body[3]! ^ 1;
      res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    });
    const c = fast();
    expect((await c.fetchBlob({ registry: host, repository: 'r' }, DIG)).equals(DATA)).toBe(true);
    expect(n).toBe(2);
    const chunks: Buffer[] = [];
    for await (const ch of c.blobStream({ registry: host, repository: 'r' }, DIG)) chunks.push(ch);
    expect(Buffer.concat(chunks).equals(DATA)).toBe(true);
    await c.close();
  });

  it('resumes a broken stream with a range request', async () => {
    let n = 0;
    const host = await serve((req, res) => {
      n++;
      if (!req.headers.range) {
        res.writeHead(200, { 'content-length': String(DATA.length) });
        res.write(DATA.subarray(0, 400));
        setTimeout(() => req.socket.destroy(), 10);
        return;
      }
      const m = /^bytes=(\d+)-$/.exec(req.headers.range)!;
      send206(res, Number(m[1]), DATA.length - 1);
    });
    const c = fast();
    const chunks: Buffer[] = [];
    for await (const ch of c.blobStream({ registry: host, repository: 'r' }, DIG)) chunks.push(ch);
    expect(Buffer.concat(chunks).equals(DATA)).toBe(true);
    expect(n).toBe(2);
    await c.close();
  });
});

describe('redirects and auth', () => {
  it('follows a redirect to another origin without Authorization, and keeps it on the same origin', async () => {
    const seen: Array<string | undefined> = [];
    const storage = await serve((req, res) => {
      seen.push(req.headers.authorization);
      const [a, b] = rangeOf(req);
      send206(res, a, b);
    });
    const host = await serve((req, res) => {
      if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="t"' }).end();
      if (req.url?.startsWith('/v2/r/blobs/')) return void res.writeHead(307, { location: `/moved${req.url}` }).end();
      if (req.url?.startsWith('/moved/'))
        return void res.writeHead(302, { location: `http://${storage}/s3/x?sig=1` }).end();
      res.writeHead(500).end();
    });
    const c = fast({ credentials: { username: 'u', password: 'p' } });
    const buf = Buffer.alloc(20);
    await c.readBlob({ registry: host, repository: 'r' }, DIG, buf, 3);
    expect(buf.equals(DATA.subarray(3, 23))).toBe(true);
    expect(seen).toEqual([undefined]);
    expect(c.stats.redirects).toBe(2);
    await c.close();
  });

  it('a wrong password is EAUTH naming the host, without the password', async () => {
    const host = await serve((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('u:right').toString('base64')}`) {
        return void res.writeHead(401, { 'www-authenticate': 'Basic realm="t"' }).end();
      }
      res.writeHead(200).end('{}');
    });
    const c = fast({ credentials: { username: 'u', password: 'S3cr3t-wrong' } });
    const e = await c.ping(host).catch((x: DadiError) => x);
    expect(e).toMatchObject({ code: 'EAUTH' });
    expect((e as Error).message).toContain(host);
    expect((e as Error).message).not.toContain('S3cr3t');
    expect(JSON.stringify(e)).not.toContain('S3cr3t');
    await c.close();
  });
});

describe('connection reuse', () => {
  it('sends a request made right after a response on the connection that response freed', async () => {
    let connections = 0;
    const host = await serve((req, res) => {
      const [a, b] = rangeOf(req);
      send206(res, a, b);
    });
    (servers[servers.length - 1] as Server).on('connection', () => connections++);
    const c = fast();
    const ref = { registry: host, repository: 'r' };
    // Each read depends on the one before, as a manifest's config or a layer's index does.
    for (let i = 0; i < 5; i++) {
      const b = Buffer.alloc(10);
      await c.readBlob(ref, DIG, b, i * 10);
      expect(b.equals(DATA.subarray(i * 10, i * 10 + 10))).toBe(true);
    }
    expect(connections).toBe(1);
    await c.close();
  });
});

describe('preconnect', () => {
  it('opens spare connections that a burst of parallel reads then uses, with no new connection', async () => {
    let connections = 0;
    const host = await serve((req, res) => {
      const [a, b] = rangeOf(req);
      send206(res, a, b);
    });
    const server = servers[servers.length - 1] as Server;
    server.on('connection', () => connections++);
    const c = fast({ connections: 4 });
    c.transport.preconnect(host);
    for (let i = 0; i < 100 && connections < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(connections).toBe(3); // the pool's connections less one
    await new Promise((r) => setTimeout(r, 20)); // the spares are open on this side too
    const bufs = [0, 1, 2].map(() => Buffer.alloc(10));
    await Promise.all(bufs.map((b, i) => c.readBlob({ registry: host, repository: 'r' }, DIG, b, i * 10)));
    expect(bufs.map((b, i) => b.equals(DATA.subarray(i * 10, i * 10 + 10)))).toEqual([true, true, true]);
    expect(connections).toBe(3);
    await c.close();
  });

  it('a refused preconnect leaves the requests to connect themselves', async () => {
    const c = fast();
    c.transport.preconnect('127.0.0.1:1');
    const e = await c.ping('127.0.0.1:1').catch((x: DadiError) => x);
    expect(e).toMatchObject({ code: 'EIO' });
    await c.close();
  });
});
