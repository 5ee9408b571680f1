// A fault-injecting HTTP proxy for tests, placed in front of a registry. Per request, with a
// configurable probability per fault: reset the connection, answer 500/503, 429 with Retry-After,
// truncate the body, send a consistent but shorter 206, stall before or during the body, corrupt
// body bytes, or drop the Range header (the registry then sends the whole blob). It can also
// answer blob GETs with 307 redirects to a "presigned" URL on itself, which refuses requests that
// carry an Authorization header.
//
//   const proxy = await startFaultProxy({ target: reg.url, faults: { reset: 0.05, corrupt: 0.02 } });
//   try { … `${proxy.host}/repo@digest` … proxy.counts … } finally { await proxy.stop(); }

import {
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { rng } from '../mutate.js';
import { freePort } from './registry-harness.js';

export type Fault =
  | 'reset' // destroy the socket without answering
  | 'http500'
  | 'http503'
  | 'http429' // with Retry-After
  | 'truncate' // send the headers and part of the body, then destroy the socket
  | 'short' // a valid-looking 206 for fewer bytes than asked (Content-Range/Length rewritten)
  | 'stall' // never answer (until stallMs, then destroy)
  | 'stall-body' // send headers and part of the body, then stall
  | 'corrupt' // flip a few bytes of the body, lengths unchanged
  | 'ignore-range'; // forward without the Range header

export const ALL_FAULTS: readonly Fault[] = [
  'reset',
  'http500',
  'http503',
  'http429',
  'truncate',
  'short',
  'stall',
  'stall-body',
  'corrupt',
  'ignore-range',
];

export interface FaultProxyOptions {
  /** Upstream base URL, e.g. `http://127.0.0.1:5000`. */
  target: string;
  /** Probability of each fault per eligible request (their sum must be ≤ 1). */
  faults?: Partial<Record<Fault, number>>;
  /** Which requests may get a fault (default: GET/HEAD under /v2/<name>/…, i.e. not the /v2/ ping). */
  eligible?: (req: IncomingMessage) => boolean;
  /** Retry-After value sent with 429 (seconds, default 0). */
  retryAfterSeconds?: number;
  /** How long a stall lasts before the socket is destroyed (default 30 s). */
  stallMs?: number;
  /** Seed of the fault dice (default 1): the same seed replays the same choices. */
  seed?: number;
  /** Answer blob GETs with 307 to `/__presigned/…` on this proxy (which rejects Authorization). */
  redirectBlobs?: boolean;
  /** Authorization the proxy itself sends upstream for presigned requests (auth-mode registries). */
  upstreamAuthorization?: string;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  /** Requests seen per fault (and `ok` for untouched ones, `presigned` for redirect targets). */
  counts: Record<string, number>;
  /** Requests to the presigned URL that wrongly carried an Authorization header. */
  leakedAuth: number;
  /** Response body bytes sent to clients (what the registry behind it served through it). */
  bodyBytes: number;
  setFaults(f: Partial<Record<Fault, number>>): void;
  /** Inject exactly these faults, in order, on the next eligible requests (before any dice). */
  forceNext(...f: Fault[]): void;
  stop(): Promise<void>;
}

const defaultEligible = (req: IncomingMessage) =>
  (req.method === 'GET' || req.method === 'HEAD') && /^\/v2\/.+/.test(req.url ?? '');

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(opts.target);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const random = rng(opts.seed ?? 1);
  let faults = { ...(opts.faults ?? {}) };
  const counts: Record<string, number> = { ok: 0 };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const eligible = opts.eligible ?? defaultEligible;
  const stallMs = opts.stallMs ?? 30_000;
  const state = { leakedAuth: 0, bodyBytes: 0 };

  const forced: Fault[] = [];
  const pick = (): Fault | undefined => {
    const next = forced.shift();
    if (next) return next;
    let r = random();
    for (const [f, p] of Object.entries(faults) as Array<[Fault, number]>) {
      if (r < p) return f;
      r -= p;
    }
    return undefined;
  };
  const count = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  /** Forward to upstream; returns status, headers and the buffered body. */
  const forward = (req: IncomingMessage, body: Buffer, path: string, dropHeaders: string[]) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>(
      (resolve, reject) => {
        const headers = { ...req.headers };
        for (const h of dropHeaders) delete headers[h];
        const up = httpRequest(
          { host: target.hostname, port: target.port, method: req.method, path, headers, agent },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
            );
            res.on('error', reject);
          },
        );
        up.on('error', reject);
        up.end(body);
      },
    );

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    let path = req.url ?? '/';
    const drop: string[] = [];

    if (path.startsWith('/__presigned/')) {
      count('presigned');
      if (req.headers.authorization) {
        state.leakedAuth++;
        res.writeHead(400, { 'content-type': 'text/plain' }).end('authorization sent to a presigned URL');
        return;
      }
      path = path.slice('/__presigned'.length).replace(/[?&]sig=[^&]*$/, '');
      if (opts.upstreamAuthorization) req.headers.authorization = opts.upstreamAuthorization;
    } else if (opts.redirectBlobs && req.method === 'GET' && /^\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}$/.test(path)) {
      count('redirect');
      res.writeHead(307, { location: `/__presigned${path}?sig=test`, 'content-length': '0' }).end();
      return;
    }

    const fault = eligible(req) ? pick() : undefined;
    count(fault ?? 'ok');
    switch (fault) {
      case 'reset':
        req.socket.destroy();
        return;
      case 'http500':
      case 'http503': {
        const status = fault === 'http500' ? 500 : 503;
        res
          .writeHead(status, { 'content-type': 'application/json' })
          .end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
        return;
      }
      case 'http429':
        res
          .writeHead(429, { 'retry-after': String(opts.retryAfterSeconds ?? 0), 'content-type': 'application/json' })
          .end('{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}');
        return;
      case 'stall':
        later(stallMs, () => req.socket.destroy());
        return;
      case 'ignore-range':
        drop.push('range');
        break;
      default:
        break;
    }
    let up: Awaited<ReturnType<typeof forward>>;
    try {
      up = await forward(req, body, path, drop);
    } catch {
      req.socket.destroy();
      return;
    }
    const headers = { ...up.headers };
    delete headers.connection;
    delete headers['keep-alive'];
    delete headers['transfer-encoding'];
    let out = up.body;
    const hasBody = req.method !== 'HEAD' && out.length > 0;
    if (hasBody && fault === 'corrupt') {
      out = Buffer.from(out);
      const flips = 1 + Math.floor(random() * 3);
      for (let i = 0; i < flips; i++) out[Math.floor(random() * out.length)]! ^= 1 << Math.floor(random() * 8);
    }
    if (hasBody && fault === 'short' && up.status === 206 && out.length > 1) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(headers['content-range']));
      if (m) {
        const keep = Math.max(1, Math.floor(out.length / 2));
        out = out.subarray(0, keep);
        headers['content-range'] = `bytes ${m[1]}-${Number(m[1]) + keep - 1}/${m[3]}`;
      }
    }
    if (hasBody)
      headers['content-length'] = String(fault === 'truncate' || fault === 'stall-body' ? up.body.length : out.length);
    res.writeHead(up.status, headers);
    if (hasBody && (fault === 'truncate' || fault === 'stall-body')) {
      res.write(out.subarray(0, Math.floor(out.length / 2)));
      if (fault === 'truncate') later(5, () => req.socket.destroy());
      else later(stallMs, () => req.socket.destroy());
      return;
    }
    if (req.method !== 'HEAD') state.bodyBytes += out.length;
    res.end(req.method === 'HEAD' ? undefined : out);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    counts,
    get leakedAuth() {
      return state.leakedAuth;
    },
    get bodyBytes() {
      return state.bodyBytes;
    },
    setFaults(f) {
      faults = { ...f };
    },
    forceNext(...f) {
      forced.push(...f);
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      agent.destroy();
    },
  };
}
