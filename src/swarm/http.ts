// Small HTTP helpers shared by the P2P root and agent servers: bounded bodies, JSON answers and
// error answers that name the problem (never a stack). Not routing: each server routes its own.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { DadiError } from '../errors.js';

/**
 * Route every request of `server` to `handle`, so that nothing a client does can throw out of the
 * process (the agent lives inside `dadi daemon`: a crash takes every mounted rootfs down). A
 * handler that still rejects is logged and its connection dropped; a socket that errs outside a
 * request (reset, timeout) is dropped; a malformed request gets a 400. The server keeps serving.
 */
export function serveRequests(
  server: Server,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  log: (message: string) => void,
): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      log(`${req.method} ${req.url}: ${(e as Error)?.message ?? String(e)}`);
      res.destroy();
    });
  });
  server.on('clientError', (e: Error & { code?: string }, socket) => {
    // A malformed request still gets its 400; a reset or timed-out socket is just dropped.
    if (socket.writable && e.code?.startsWith('HPE_'))
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
}

/** Read a request body of at most `max` bytes (EINVAL past it: the rest is not read). */
export async function readRequestBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new DadiError('ERANGE', `request body of ${declared} bytes is larger than ${max}`);
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new DadiError('ERANGE', `request body is larger than ${max} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const body = await readRequestBody(req, max);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new DadiError('EINVAL', 'request body is not JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

const STATUS: Partial<Record<DadiError['code'], number>> = {
  EINVAL: 400,
  ERANGE: 416,
  EAUTH: 403,
  ENOTFOUND: 404,
  ETIMEDOUT: 504,
  ECORRUPT: 502,
  EIO: 502,
};

/** Answer an error: a DadiError's status and message; anything else is a 500 with its message. */
export function sendError(res: ServerResponse, e: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const status = e instanceof DadiError ? (STATUS[e.code] ?? 500) : 500;
  sendJson(res, status, { error: (e as Error).message, code: e instanceof DadiError ? e.code : 'EIO' });
}

/** Split `host:port` (IPv4, name or [IPv6]) for listen(). */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new DadiError('EINVAL', `listen address ${addr} is not host:port`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
