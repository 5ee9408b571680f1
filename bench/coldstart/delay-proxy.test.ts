// The counting proxy on loopback: it carries bytes unchanged and counts response bodies; with
// `corrupt` (bench/p2p's malicious peer) it flips exactly one byte per 4 KiB of body and leaves
// the HTTP framing intact, so the client gets well-formed answers with wrong bytes.

import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy } from './delay-proxy.js';

const BODY = randomBytes(3 * 4096 + 100);

describe('delay proxy', () => {
  let server: Server;
  let target: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      // Chunked on /chunked, Content-Length elsewhere: both framings are parsed.
      if (req.url === '/chunked') {
        res.write(BODY.subarray(0, 5000));
        res.end(BODY.subarray(5000));
      } else res.writeHead(200, { 'content-length': BODY.length }).end(BODY);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  async function through(corrupt: boolean, path: string) {
    const p = startProxy('127.0.0.1:0', target, 0, { corrupt });
    await p.listening;
    try {
      const port = (p.server.address() as AddressInfo).port;
      const bodies: Buffer[] = [];
      // Two requests on one connection: the second answer's framing follows the first's body.
      for (let i = 0; i < 2; i++) {
        const r = await request(`http://127.0.0.1:${port}${path}`);
        expect(r.statusCode).toBe(200);
        bodies.push(Buffer.from(await r.body.arrayBuffer()));
      }
      return { bodies, stats: { ...p.stats } };
    } finally {
      p.close();
    }
  }

  for (const path of ['/fixed', '/chunked']) {
    it(`passes ${path} bodies unchanged and counts them`, async () => {
      const { bodies, stats } = await through(false, path);
      for (const b of bodies) expect(b.equals(BODY)).toBe(true);
      expect(stats.requests).toBe(2);
      expect(stats.responseBodyBytes).toBe(2 * BODY.length);
    });

    it(`corrupt: flips one byte per 4 KiB of ${path} bodies, framing intact`, async () => {
      const { bodies } = await through(true, path);
      // Positions count over a connection's bodies, so a second answer on the same connection
      // starts mid-period: 3 or 4 flips per body, 4096 bytes apart.
      const flipped = bodies.map((b) => {
        expect(b.length).toBe(BODY.length);
        const at: number[] = [];
        for (let i = 0; i < b.length; i++) if (b[i] !== BODY[i]) at.push(i);
        return at;
      });
      expect(flipped[0]).toEqual([0, 4096, 8192, 12288]);
      expect(flipped[1]!.length).toBeGreaterThanOrEqual(3);
      for (let k = 1; k < flipped[1]!.length; k++) expect(flipped[1]![k]! - flipped[1]![k - 1]!).toBe(4096);
    });
  }
});
