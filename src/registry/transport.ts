// HTTP for the registry client: an undici Pool per origin (keep-alive, several connections),
// auth challenges, manual redirects (Authorization dropped when leaving the registry's origin),
// per-request idle timeouts, an overall deadline, and retries with exponential backoff + jitter on
// connection errors, 5xx and 429 (honouring Retry-After), and the detour of requests marked for it
// through an overlaybd-style P2P proxy (p2p-proxy.ts). Knows nothing of manifests or blobs.

import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import { buildConnector, type Dispatcher, Pool } from 'undici';
import { DadiError, type DadiErrorCode } from '../errors.js';
import { accessDenied, authFailed, noCredentials, parseWwwAuthenticate, RegistryAuth } from './auth.js';
import { countBodyBytes } from './body-bytes.js';
import type { CredentialProvider } from './credentials.js';
import type { HostCapability, HostsLookup, HostTls } from './hosts.js';
import { p2pProxyUrl, parseP2pProxy } from './p2p-proxy.js';
import { registryOrigin, type SchemeOptions } from './reference.js';
import { SocketReuse } from './socket-reuse.js';
import { SpareSockets } from './spare-sockets.js';

export interface TransportOptions extends SchemeOptions {
  /** Extra CA certificates (PEM) trusted for HTTPS, added to Node's default roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate and key (PEM) for registries that require mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Skip server certificate verification (default false; prefer `ca`). */
  skipTlsVerify?: boolean;
  /** Connections per origin (default 16). */
  connections?: number;
  /** Idle timeout of one request: waiting for headers, or between body chunks (default 30 s). */
  requestTimeoutMs?: number;
  /** Budget of one operation including its retries (default 120 s). */
  deadlineMs?: number;
  /** Attempts per operation, first included (default 6). */
  maxAttempts?: number;
  /** First backoff delay (default 100 ms), doubled per retry up to `backoffMaxMs` (default 5 s), with jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Longest Retry-After honoured (default 60 s); a longer one fails the operation. */
  retryAfterMaxMs?: number;
  userAgent?: string;
  /**
   * An overlaybd-style P2P proxy (`http://host:port[/prefix]`): GETs marked `viaP2pProxy` (blob
   * reads) go to `<proxy>/<upstream URL>` with their Range and Authorization. When the proxy
   * cannot be reached, the request goes to the registry directly (warned once, counted).
   */
  p2pProxy?: string;
  /**
   * containerd-style registry hosts (hosts.ts): the mirrors and server a registry's requests go to,
   * tried in order, with their own TLS settings and credentials.
   */
  hosts?: HostsLookup;
  /**
   * Trace/debug/warning messages. Trace lines carry each request's URL and headers, credentials
   * included: the receiver must redact them (src/log does).
   */
  log?: (level: 'trace' | 'debug' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** One HTTP response; the handler must read or destroy `body`. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered (after redirects). */
  url: string;
}

export interface RequestSpec {
  method: HttpMethod;
  url: string;
  headers?: Record<string, string>;
  /** A buffered body, resent on retries. */
  body?: Uint8Array | string;
  /** Authenticate against this registry with these scopes; omit for unauthenticated URLs. */
  auth?: { registry: string; scopes: readonly string[] };
  /** Names the operation in errors, e.g. `blob sha256:… in host/repo`. */
  what: string;
  /** Follow 3xx (default: GET and HEAD). */
  followRedirects?: boolean;
  /** Retry transient failures (default true). */
  retry?: boolean;
  /** Absolute deadline (ms since epoch); default now + deadlineMs. `Infinity` for none. */
  deadline?: number;
  signal?: AbortSignal;
  /** The handler hands the body on (streaming): leave it alone after the handler returns. */
  keepBody?: boolean;
  /** A GET the P2P proxy may serve (a blob read), when one is configured. */
  viaP2pProxy?: boolean;
  /** The origin `auth` belongs to, when not the registry's own (a mirror's); redirects elsewhere drop it. */
  authOrigin?: string;
}

/** Thrown (by handlers too) for failures worth retrying. */
export class TransientError extends Error {
  constructor(
    readonly error: DadiError,
    readonly retryAfterMs?: number,
  ) {
    super(error.message);
  }
}

export interface TransportStats {
  /** HTTP requests sent (every attempt, redirect hop and token request). */
  requests: number;
  /** Attempts repeated after a transient failure. */
  retries: number;
  redirects: number;
  /** 401 challenges answered. */
  challenges: number;
  /** Response body bytes received (every response: blobs, manifests, tokens, errors, dumped bodies). */
  responseBytes: number;
  /** Requests answered by the P2P proxy, and ones sent to the registry because it was unreachable. */
  p2pProxyRequests: number;
  p2pProxyFallbacks: number;
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_INFO',
  'HPE_INVALID_CONSTANT',
  'HPE_INVALID_CHUNK_SIZE',
  'HPE_UNEXPECTED_CONTENT_LENGTH',
  'HPE_CLOSED_CONNECTION',
]);

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/** Parse Retry-After (seconds or an HTTP date) into ms; undefined when absent or unreadable. */
export function parseRetryAfter(v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const d = Date.parse(t);
  return Number.isNaN(d) ? undefined : Math.max(0, d - now);
}

/** Drop a response body (closing its connection) without an unhandled 'error' event. */
export function discard(res: { body: HttpResponse['body'] }): void {
  if (res.body.destroyed) return;
  res.body.on('error', () => {});
  res.body.destroy();
}

export function header(res: { headers: HttpResponse['headers'] }, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Read a whole body, failing (transiently) past `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      discard(res);
      throw new DadiError('EFORMAT', `${what}: response larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
}

/**
 * The error for an unexpected status: reads at most 8 KiB of the body for the registry's error
 * code (never for 416, whose Content-Length registries get wrong). 404 → ENOTFOUND, 416 → ERANGE,
 * DIGEST_INVALID → ECORRUPT, 401/403 → EAUTH, others EIO.
 */
export async function statusError(res: HttpResponse, what: string): Promise<DadiError> {
  if (res.status === 416) {
    discard(res);
    const m = /^bytes \*\/(\d+)$/.exec(header(res, 'content-range') ?? '');
    return new DadiError(
      'ERANGE',
      `${what}: HTTP 416 range not satisfiable${m ? ` (the blob has ${m[1]} bytes)` : ''}`,
    );
  }
  let detail = '';
  let regCode = '';
  try {
    const text = (await readBody(res, 8192, what)).toString('utf8');
    try {
      const j = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
      const e = j.errors?.[0];
      if (e) {
        regCode = e.code ?? '';
        detail = `${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`;
      }
    } catch {
      detail = text.trim().split('\n')[0]?.slice(0, 200) ?? '';
    }
  } catch {
    discard(res);
  }
  let code: DadiErrorCode = 'EIO';
  if (res.status === 404) code = 'ENOTFOUND';
  else if (res.status === 401 || res.status === 403) code = 'EAUTH';
  else if (regCode === 'DIGEST_INVALID' || regCode === 'SIZE_INVALID') code = 'ECORRUPT';
  else if (res.status === 400 || res.status === 405) code = 'EINVAL';
  return new DadiError(code, `${what}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`);
}

/** Failures to reach a server at all: the P2P proxy is down, so go to the registry instead. */
const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** undici's own default connect timeout (its connector is built here, for SpareSockets). */
const CONNECT_TIMEOUT_MS = 10_000;
/** Connections preconnect opens by default (a cold start's bursts: a dozen parallel range GETs). */
const PRECONNECT = 12;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export class Transport {
  readonly stats: TransportStats = {
    requests: 0,
    retries: 0,
    redirects: 0,
    challenges: 0,
    responseBytes: 0,
    p2pProxyRequests: 0,
    p2pProxyFallbacks: 0,
  };
  private readonly p2pProxy: string | undefined;
  private warnedProxyDown = false;
  private readonly pools = new Map<string, Dispatcher>();
  /** Each pool's connector, with the sockets preconnect opened ahead. */
  private readonly spares = new Map<string, SpareSockets>();
  private readonly reuse = new SocketReuse();
  private readonly auths = new Map<string, RegistryAuth>();
  /** TLS settings of the hosts configured for registries, by origin. */
  private readonly hostTls = new Map<string, HostTls>();
  private closed = false;
  private readonly o: Required<
    Pick<
      TransportOptions,
      | 'connections'
      | 'requestTimeoutMs'
      | 'deadlineMs'
      | 'maxAttempts'
      | 'backoffBaseMs'
      | 'backoffMaxMs'
      | 'retryAfterMaxMs'
      | 'userAgent'
    >
  >;

  constructor(
    readonly options: TransportOptions,
    private readonly credentials: CredentialProvider,
  ) {
    this.o = {
      connections: options.connections ?? 16,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      deadlineMs: options.deadlineMs ?? 120_000,
      maxAttempts: options.maxAttempts ?? 6,
      backoffBaseMs: options.backoffBaseMs ?? 100,
      backoffMaxMs: options.backoffMaxMs ?? 5_000,
      retryAfterMaxMs: options.retryAfterMaxMs ?? 60_000,
      userAgent: options.userAgent ?? 'dadi/0.1',
    };
    this.p2pProxy = parseP2pProxy(options.p2pProxy, 'p2pProxy');
  }

  /** `scheme://host[:port]` of a registry under this transport's scheme rules. */
  origin(registry: string): string {
    return registryOrigin(registry, this.options);
  }

  /** The auth state of a registry host (created on first use). */
  auth(registry: string): RegistryAuth {
    let a = this.auths.get(registry);
    if (!a) {
      a = new RegistryAuth(registry, this.credentials, (url, init) => this.tokenHttp(registry, url, init));
      this.auths.set(registry, a);
    }
    return a;
  }

  /** Sum of token requests over all hosts. */
  get tokenRequests(): number {
    let n = 0;
    for (const a of this.auths.values()) n += a.tokenRequests;
    return n;
  }

  /**
   * Send `spec`, retrying transient failures, and give each response that is not an auth
   * challenge, a followed redirect or a retryable status (429, 5xx) to `handle`. `handle` reads the
   * body and returns a value, or throws (a `TransientError` to retry). Bodies left unread are
   * discarded.
   */
  async request<T>(spec: RequestSpec, handle: (res: HttpResponse) => Promise<T>): Promise<T> {
    const route = await this.route(spec);
    if (!route) return this.requestHere(spec, handle);
    let last: unknown;
    for (const [i, s] of route.entries()) {
      try {
        return await this.requestHere(s, handle);
      } catch (e) {
        if (spec.signal?.aborted) throw e;
        last = e;
        if (i < route.length - 1) {
          this.options.log?.('debug', `${(e as Error).message}; trying the next host of ${spec.auth!.registry}`);
        }
      }
    }
    throw last;
  }

  /**
   * The requests to try in turn for `spec` when hosts are configured for its registry: one per
   * host that may do what it does (resolve a manifest, pull a blob, push), mirrors first, each
   * with the host's URL, headers and credentials. Only the last is retried on transient failures:
   * an unreachable mirror passes to the next host at once. Pushes go to the first push host only,
   * as an upload session lives on one host.
   */
  private async route(spec: RequestSpec): Promise<RequestSpec[] | undefined> {
    if (!spec.auth || !this.options.hosts) return undefined;
    const registry = spec.auth.registry;
    const base = `${this.origin(registry)}/v2/`;
    if (!spec.url.startsWith(base)) return undefined;
    const hosts = await this.options.hosts(registry);
    if (!hosts) return undefined;
    const tail = spec.url.slice(base.length - 1);
    const cap: HostCapability =
      spec.method !== 'GET' && spec.method !== 'HEAD' ? 'push' : tail.includes('/manifests/') ? 'resolve' : 'pull';
    const server = hosts[hosts.length - 1];
    let usable = hosts.filter((h) => h.capabilities.has(cap));
    if (usable.length === 0) {
      throw new DadiError('EINVAL', `${spec.what}: no host configured for ${registry} may ${cap} (hosts.toml)`);
    }
    if (cap === 'push') usable = usable.slice(0, 1);
    return usable.map((h, i) => {
      if (h.tls) this.hostTls.set(h.origin, h.tls);
      const s: RequestSpec = {
        ...spec,
        url: `${h.origin}${h.path}${tail}`,
        // The server answers for the registry's own name (its credentials); a mirror for its host.
        auth: { registry: h === server ? registry : new URL(h.origin).host, scopes: spec.auth!.scopes },
        authOrigin: h.origin,
      };
      if (h.headers) s.headers = { ...h.headers, ...spec.headers };
      if (i < usable.length - 1) s.retry = false;
      return s;
    });
  }

  private async requestHere<T>(spec: RequestSpec, handle: (res: HttpResponse) => Promise<T>): Promise<T> {
    const started = Date.now();
    const deadline = spec.deadline ?? started + this.o.deadlineMs;
    const timer = Number.isFinite(deadline) ? AbortSignal.timeout(Math.max(1, deadline - started)) : undefined;
    const signals = [spec.signal, timer].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    let attempt = 0;
    for (;;) {
      attempt++;
      let failure: { error: DadiError; transient: boolean; retryAfterMs?: number };
      try {
        const res = await this.once(spec, signal, deadline);
        let ok = false;
        try {
          if (res.status === 429 || (res.status >= 500 && res.status !== 501 && res.status !== 505)) {
            const err = await statusError(res, spec.what);
            throw new TransientError(err, parseRetryAfter(header(res, 'retry-after')));
          }
          const v = await handle(res);
          ok = true;
          return v;
        } finally {
          // On failure, drop the connection rather than wait for a body that may be stalled.
          if (!ok) discard(res);
          else if (!spec.keepBody && !res.body.destroyed && !(res.body as { bodyUsed?: boolean }).bodyUsed) {
            await res.body.dump({ limit: 65536 }).catch(() => {});
          }
        }
      } catch (e) {
        failure = this.classify(e, spec, timer, spec.signal, started);
      }
      const { error, transient } = failure;
      if (!transient || spec.retry === false || attempt >= this.o.maxAttempts) {
        if (transient && attempt > 1) {
          throw new DadiError(error.code, `${error.message} (gave up after ${attempt} attempts)`, { cause: error });
        }
        throw error;
      }
      let wait = failure.retryAfterMs;
      if (wait !== undefined && wait > this.o.retryAfterMaxMs) {
        throw new DadiError(
          'ETIMEDOUT',
          `${error.message}; the registry asked to retry after ${Math.round(wait / 1000)} s, longer than allowed`,
        );
      }
      wait ??= this.backoff(attempt);
      if (Date.now() + wait >= deadline) {
        throw new DadiError(
          'ETIMEDOUT',
          `${spec.what}: no success within the deadline (${Math.round((deadline - started) / 1000)} s, ${attempt} attempts; last error: ${error.message})`,
          { cause: error },
        );
      }
      this.stats.retries++;
      this.options.log?.('debug', `retry ${attempt}/${this.o.maxAttempts - 1} in ${wait} ms: ${error.message}`);
      try {
        await sleep(wait, undefined, signal ? { signal } : undefined);
      } catch (e) {
        throw this.classify(e, spec, timer, spec.signal, started).error;
      }
    }
  }

  /** Exponential backoff with jitter: a random delay in [d/2, d], d = base·2^(attempt−1) capped. */
  private backoff(attempt: number): number {
    const d = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** (attempt - 1));
    return Math.round(d / 2 + (Math.random() * d) / 2);
  }

  private classify(
    e: unknown,
    spec: RequestSpec,
    timer: AbortSignal | undefined,
    caller: AbortSignal | undefined,
    started: number,
  ): { error: DadiError; transient: boolean; retryAfterMs?: number } {
    if (e instanceof TransientError) {
      const r: { error: DadiError; transient: boolean; retryAfterMs?: number } = { error: e.error, transient: true };
      if (e.retryAfterMs !== undefined) r.retryAfterMs = e.retryAfterMs;
      return r;
    }
    if (timer?.aborted && !caller?.aborted) {
      return {
        error: new DadiError(
          'ETIMEDOUT',
          `${spec.what}: timed out after ${Math.round((Date.now() - started) / 1000)} s`,
          { cause: e },
        ),
        transient: false,
      };
    }
    if (caller?.aborted)
      return { error: new DadiError('EIO', `${spec.what}: aborted`, { cause: e }), transient: false };
    if (e instanceof DadiError) return { error: e, transient: false };
    const err = e as NodeJS.ErrnoException;
    const code = typeof err?.code === 'string' ? err.code : '';
    const msg = err?.message ?? String(e);
    if (/CERT|SSL|TLS|EPROTO|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|SIGNATURE/.test(code)) {
      return {
        error: new DadiError(
          'EIO',
          `${spec.what}: TLS error (${code}): ${msg}; pass the registry's CA certificate, or --insecure for plain HTTP`,
          { cause: e },
        ),
        transient: false,
      };
    }
    if (code === 'ENOTFOUND') {
      return {
        error: new DadiError('EIO', `${spec.what}: cannot resolve host ${new URL(spec.url).host}`, { cause: e }),
        transient: true,
      };
    }
    if (
      TRANSIENT_CODES.has(code) ||
      (code.startsWith('UND_ERR_') &&
        code !== 'UND_ERR_INVALID_ARG' &&
        code !== 'UND_ERR_DESTROYED' &&
        code !== 'UND_ERR_CLOSED')
    ) {
      const timeout = TIMEOUT_CODES.has(code);
      return {
        error: new DadiError(
          timeout ? 'ETIMEDOUT' : 'EIO',
          `${spec.what}: ${timeout ? 'timed out' : 'connection error'} (${code}: ${msg})`,
          { cause: e },
        ),
        transient: true,
      };
    }
    if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') {
      return {
        error: new DadiError('EIO', `${spec.what}: the registry client was closed`, { cause: e }),
        transient: false,
      };
    }
    return { error: new DadiError('EIO', `${spec.what}: ${msg}`, { cause: e }), transient: false };
  }

  /** One attempt: auth challenge round trips and redirects included. */
  private async once(spec: RequestSpec, signal: AbortSignal | undefined, deadline: number): Promise<HttpResponse> {
    let url = spec.url;
    let useAuth = spec.auth !== undefined;
    let challenged = false;
    let hops = 0;
    const follow = spec.followRedirects ?? (spec.method === 'GET' || spec.method === 'HEAD');
    const registryOriginUrl = spec.auth ? (spec.authOrigin ?? this.origin(spec.auth.registry)) : undefined;
    for (;;) {
      const auth = useAuth && spec.auth ? this.auth(spec.auth.registry) : undefined;
      const authz = auth ? await auth.header(spec.auth!.scopes) : undefined;
      const headers: Record<string, string> = { 'user-agent': this.o.userAgent, ...spec.headers };
      if (authz) headers.authorization = authz;
      const res = await this.sendVia(spec, url, headers, signal, deadline);
      if (auth && res.status === 401) {
        const www = header(res, 'www-authenticate');
        await res.body.dump({ limit: 65536 }).catch(() => {});
        if (challenged) {
          const registry = spec.auth!.registry;
          if (!(await this.credentials(registry))) throw noCredentials(registry);
          // A fresh token that is still refused lacks the scope: the user may not do this.
          const bearer = parseWwwAuthenticate(www ?? '').find((c) => c.scheme === 'bearer');
          throw bearer?.params.error === 'insufficient_scope'
            ? accessDenied(registry, spec.what)
            : authFailed(registry);
        }
        challenged = true;
        this.stats.challenges++;
        await auth.challenged(www, spec.auth!.scopes, authz);
        continue;
      }
      if (auth && res.status === 403) {
        await res.body.dump({ limit: 65536 }).catch(() => {});
        throw accessDenied(spec.auth!.registry, spec.what);
      }
      if (follow && REDIRECTS.has(res.status)) {
        const loc = header(res, 'location');
        await res.body.dump({ limit: 65536 }).catch(() => {});
        if (!loc) throw new DadiError('EIO', `${spec.what}: HTTP ${res.status} redirect without a Location`);
        if (++hops > MAX_REDIRECTS) throw new DadiError('EIO', `${spec.what}: more than ${MAX_REDIRECTS} redirects`);
        this.stats.redirects++;
        url = new URL(loc, url).toString();
        // Presigned storage URLs carry their own authorization: never send ours elsewhere.
        if (new URL(url).origin !== registryOriginUrl) useAuth = false;
        continue;
      }
      res.url = url;
      return res;
    }
  }

  /**
   * Send to `url`, or through the P2P proxy when `spec` may take it. `url` stays the upstream URL
   * either way, so redirects and the Authorization origin check work on what the proxy fetches.
   */
  private async sendVia(
    spec: RequestSpec,
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<HttpResponse> {
    const proxy = spec.viaP2pProxy && spec.method === 'GET' ? this.p2pProxy : undefined;
    if (!proxy) return this.send(url, spec.method, headers, spec.body, signal, deadline);
    try {
      const res = await this.send(p2pProxyUrl(proxy, url), spec.method, headers, spec.body, signal, deadline);
      this.stats.p2pProxyRequests++;
      return res;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException)?.code ?? '';
      if (!CONNECT_FAILURES.has(code)) throw e;
      this.stats.p2pProxyFallbacks++;
      if (!this.warnedProxyDown) {
        this.warnedProxyDown = true;
        const warn = this.options.log ?? ((_: string, m: string) => process.stderr.write(`dadi: ${m}\n`));
        warn('warn', `P2P proxy ${proxy} unreachable (${code}); reading blobs from the registry directly`);
      }
      return this.send(url, spec.method, headers, spec.body, signal, deadline);
    }
  }

  private pool(origin: string): Dispatcher {
    if (this.closed) throw new DadiError('EIO', 'registry client is closed');
    let p = this.pools.get(origin);
    if (!p) {
      const connect: Record<string, unknown> = {};
      if (origin.startsWith('https:')) {
        const o = this.options;
        const h = this.hostTls.get(origin);
        const ca = [...(o.ca === undefined ? [] : Array.isArray(o.ca) ? o.ca : [o.ca]), ...(h?.ca ?? [])];
        if (ca.length > 0) connect.ca = [...rootCertificates, ...ca];
        const cert = h?.cert ?? o.cert;
        if (cert) connect.cert = cert;
        const key = h?.key ?? o.key;
        if (key) connect.key = key;
        if (h?.skipVerify ?? o.skipTlsVerify) connect.rejectUnauthorized = false;
      }
      const spare = new SpareSockets(buildConnector({ timeout: CONNECT_TIMEOUT_MS, ...connect }));
      this.spares.set(origin, spare);
      p = new Pool(origin, {
        connections: this.o.connections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connect: spare.connect,
      }).compose(
        countBodyBytes(
          (n) => (this.stats.responseBytes += n),
          () => this.reuse.ended(origin),
        ),
      );
      this.pools.set(origin, p);
    }
    return p;
  }

  /**
   * Open connections to `registry` (or to its first pull host, when hosts are configured) ahead of
   * a burst of parallel requests, at most the pool's connections less one (for the request about
   * to go), so that the burst does not wait for handshakes. Not through a P2P proxy. Errors are
   * ignored: the requests then connect themselves.
   */
  preconnect(registry: string, n = PRECONNECT): void {
    if (this.closed || this.p2pProxy) return;
    void this.pullOrigin(registry)
      .then((origin) => {
        if (!origin || this.closed) return;
        this.pool(origin);
        this.spares.get(origin)?.open(origin, Math.min(n, this.o.connections - 1));
      })
      .catch(() => {});
  }

  /** Where `registry`'s blob reads go first: its first pull host when hosts are configured. */
  private async pullOrigin(registry: string): Promise<string | undefined> {
    const hosts = await this.options.hosts?.(registry);
    if (!hosts) return this.origin(registry);
    const h = hosts.find((x) => x.capabilities.has('pull'));
    if (h?.tls) this.hostTls.set(h.origin, h.tls);
    return h?.origin;
  }

  private async send(
    url: string,
    method: HttpMethod,
    headers: Record<string, string>,
    body: Uint8Array | string | undefined,
    signal: AbortSignal | undefined,
    deadline: number,
  ): Promise<HttpResponse> {
    const u = new URL(url);
    const idle = Math.max(1, Math.min(this.o.requestTimeoutMs, deadline - Date.now()));
    this.stats.requests++;
    const freed = this.reuse.ready(u.origin);
    if (freed) await freed;
    const r = await this.pool(u.origin).request({
      path: u.pathname + u.search,
      method,
      headers,
      body: body ?? null,
      signal: signal ?? null,
      headersTimeout: idle,
      bodyTimeout: idle,
    });
    this.options.log?.('trace', `${method} ${url} → ${r.statusCode}`, {
      request: { method, url, headers },
      response: { status: r.statusCode, headers: r.headers },
    });
    return { status: r.statusCode, headers: r.headers as HttpResponse['headers'], body: r.body, url };
  }

  private async tokenHttp(
    registry: string,
    url: string,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
  ): Promise<{ status: number; body: string }> {
    const spec: RequestSpec = {
      method: init.method,
      url,
      headers: init.headers,
      what: `token for ${registry} from ${new URL(url).host}`,
    };
    if (init.body !== undefined) spec.body = init.body;
    return this.request(spec, async (res) => ({
      status: res.status,
      body: (await readBody(res, 1 << 20, spec.what)).toString('utf8'),
    }));
  }

  /** Close every pooled connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    for (const spare of this.spares.values()) spare.close();
    this.spares.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}
