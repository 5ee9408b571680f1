// The client side of the P2P protocol: ranged chunk GETs from a peer or the root, JSON calls to
// the root, chunk pushes to children. Every request has a deadline; failures come back classified
// (src/p2p/schedule.ts FetchFailure) so the scheduler decides what happens next. Not a retry loop,
// with one exception below the scheduler: a request whose connection closed before any answer
// came is sent once more on a new connection (`once`).

import { Agent, type Dispatcher, request } from 'undici';
import type { FetchFailure } from '../p2p/schedule.js';
import { HEADERS, MAX_JSON_BYTES } from './protocol.js';

/** A failed request, with why in the scheduler's terms. */
export class PeerError extends Error {
  constructor(
    readonly why: FetchFailure,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

function failureOf(e: unknown, what: string): PeerError {
  if (e instanceof PeerError) return e;
  const code = (e as { code?: string }).code ?? '';
  const why: FetchFailure =
    /TIMEOUT|ABORT/i.test(code) || /timeout/i.test((e as Error).message) ? 'timeout' : 'unreachable';
  return new PeerError(why, `${what}: ${(e as Error).message}${code ? ` (${code})` : ''}`);
}

function statusFailure(status: number, what: string, body: string): PeerError {
  const why: FetchFailure = status === 401 || status === 403 ? 'denied' : 'http';
  let detail = body.slice(0, 300);
  try {
    detail = (JSON.parse(body) as { error?: string }).error ?? detail;
  } catch {}
  return new PeerError(why, `${what}: HTTP ${status}${detail ? `: ${detail}` : ''}`, status);
}

/**
 * Errors of a connection that closed under a request before any answer came: on a pooled
 * keep-alive socket this is mostly the other side closing it as idle just as the request went
 * out (a host whose event loop is late on a busy machine sees that close too late). Blaming the
 * peer for it re-parents a live host, and a root "unreachable" for it sends chunks to the registry.
 */
const CLOSED_UNDER_REQUEST = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * `attempt(dispatcher)`, and once more on a connection of its own when the first attempt's
 * connection closed before any answer (CLOSED_UNDER_REQUEST) and `signal` has not fired. A host
 * that is really down refuses the new connection (or closes it again): that failure is the answer.
 * Only for requests the other side may see twice (GETs; joins and reports are idempotent).
 */
async function once<T>(signal: AbortSignal, attempt: (dispatcher: Dispatcher | undefined) => Promise<T>): Promise<T> {
  try {
    return await attempt(undefined);
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (signal.aborted || !CLOSED_UNDER_REQUEST.has(code) || e instanceof PeerError) throw e;
  }
  const fresh = new Agent({ connections: 1 });
  try {
    return await attempt(fresh);
  } finally {
    fresh.close().catch(() => {});
  }
}

/** A ranged GET's bytes and when they came (ms after the request started). */
export interface RangeAnswer {
  bytes: Buffer;
  firstByteMs: number;
  totalMs: number;
}

/**
 * GET `url` for bytes [offset, offset+length) into a new buffer; exactly that length or 'corrupt'.
 * `timeoutMs` bounds the whole transfer, first byte to last ('timeout' past it); `abort` ends it
 * early (a hedged request that lost), also as 'timeout'. `onProgress` runs on each heartbeat (an
 * HTTP 1xx the server sends while it waits for the bytes itself) and each piece of the body.
 */
export async function getRange(
  url: string,
  offset: number,
  length: number,
  headers: Record<string, string>,
  timeoutMs: number,
  abort?: AbortSignal,
  onProgress?: () => void,
): Promise<RangeAnswer> {
  const what = `GET ${url.replace(/\?.*/, '')} bytes ${offset}-${offset + length - 1}`;
  const signal = abort ? AbortSignal.any([AbortSignal.timeout(timeoutMs), abort]) : AbortSignal.timeout(timeoutMs);
  const started = performance.now();
  let firstByteMs: number | undefined;
  try {
    const res = await once(signal, (dispatcher) =>
      request(url, {
        method: 'GET',
        headers: { ...headers, range: `bytes=${offset}-${offset + length - 1}` },
        signal,
        onInfo: onProgress && (() => onProgress()),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        dispatcher,
      }),
    );
    if (res.statusCode !== 206) throw statusFailure(res.statusCode, what, await res.body.text());
    const buf = Buffer.allocUnsafe(length);
    let n = 0;
    for await (const c of res.body as AsyncIterable<Buffer>) {
      firstByteMs ??= performance.now() - started;
      onProgress?.();
      if (n + c.length > length) {
        res.body.destroy();
        throw new PeerError('corrupt', `${what}: more bytes than asked for`);
      }
      c.copy(buf, n);
      n += c.length;
    }
    if (n !== length) throw new PeerError('corrupt', `${what}: ${n} of ${length} bytes`);
    const totalMs = performance.now() - started;
    return { bytes: buf, firstByteMs: firstByteMs ?? totalMs, totalMs };
  } catch (e) {
    if (signal.aborted) throw new PeerError('timeout', `${what}: no complete answer within ${timeoutMs} ms`);
    throw failureOf(e, what);
  }
}

/** POST JSON, answer JSON; non-2xx is a PeerError carrying the status. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<unknown> {
  const what = `POST ${url}`;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await once(signal, (dispatcher) =>
      request(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        dispatcher,
      }),
    );
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode > 299) throw statusFailure(res.statusCode, what, text);
    if (text.length > MAX_JSON_BYTES) throw new PeerError('http', `${what}: answer too large`);
    return text ? JSON.parse(text) : undefined;
  } catch (e) {
    throw failureOf(e, what);
  }
}

/** PUT a pushed chunk to a child: it kept it, it had (or was fetching) it already, or the push failed. */
export async function pushChunk(
  url: string,
  bytes: Uint8Array,
  from: string,
  timeoutMs: number,
): Promise<'kept' | 'had' | 'failed'> {
  try {
    const res = await request(url, {
      method: 'PUT',
      headers: { [HEADERS.host]: from, 'content-type': 'application/octet-stream' },
      body: bytes,
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump();
    return res.statusCode === 204 ? 'kept' : res.statusCode === 409 ? 'had' : 'failed';
  } catch {
    return 'failed';
  }
}
