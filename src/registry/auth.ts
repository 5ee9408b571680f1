// Registry authentication state per host: the WWW-Authenticate challenge parser, Basic auth, and
// the Bearer token flow (token endpoint with service/scope, token cache per scope with expiry,
// refresh on 401). HTTP goes through a function the transport supplies; secrets never reach
// messages or logs.

import { DadiError } from '../errors.js';
import type { CredentialProvider, Credentials } from './credentials.js';

/** One challenge of a WWW-Authenticate header. `scheme` is lower-case. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
  token68?: string;
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parse a WWW-Authenticate header (RFC 9110 §11.6.1): one or more challenges, each a scheme
 * followed by a token68 or comma-separated `name=value` / `name="quoted"` parameters.
 *
 * ```ts
 * parseWwwAuthenticate('Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"')
 * // [{scheme:'bearer', params:{realm:'https://auth/token', service:'reg', scope:'repository:a:pull'}}]
 * ```
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  const s = header;
  let i = 0;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const quoted = () => {
    // at the opening quote
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or end)
    return v;
  };
  // Is there `token BWS =` (not `==`) at position j? Then a parameter starts there.
  const paramAhead = (j: number) => {
    let k = j;
    while (k < s.length && TCHAR.test(s[k]!)) k++;
    if (k === j) return false;
    while (k < s.length && (s[k] === ' ' || s[k] === '\t')) k++;
    return s[k] === '=' && s[k + 1] !== '=';
  };
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const scheme = token();
    if (!scheme) {
      i++; // skip a stray character
      continue;
    }
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    skipWs();
    if (i < s.length && s[i] !== ',' && !paramAhead(i)) {
      // token68
      const start = i;
      while (i < s.length && /[A-Za-z0-9._~+/=-]/.test(s[i]!)) i++;
      ch.token68 = s.slice(start, i);
      continue;
    }
    // parameters until one that is not followed by another `name=`
    while (i < s.length) {
      skipWs();
      if (!paramAhead(i)) break;
      const name = token().toLowerCase();
      skipWs();
      i++; // '='
      skipWs();
      const value = s[i] === '"' ? quoted() : token();
      ch.params[name] = value;
      skipWs();
      if (s[i] !== ',') break;
      // a comma: either the next parameter or the next challenge
      let j = i + 1;
      while (j < s.length && (s[j] === ' ' || s[j] === '\t' || s[j] === ',')) j++;
      if (!paramAhead(j)) break;
      i = j;
    }
  }
  return out;
}

/** The scope string for a repository, e.g. `repository:dadi/base:pull,push`. */
export function repositoryScope(repository: string, actions: 'pull' | 'push' | 'pull,push'): string {
  return `repository:${repository}:${actions === 'push' ? 'pull,push' : actions}`;
}

/** Minimal HTTP used for token requests (supplied by the transport, with its retries and TLS). */
export type TokenHttp = (
  url: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; body: string }>;

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** The Authorization value carrying `c` as Basic credentials. */
export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

/** Seconds of validity to assume when the token server says nothing (distribution's spec default). */
const DEFAULT_EXPIRES_IN = 60;

/**
 * The authentication state of one registry host. The transport asks `header(scopes)` before each
 * request and calls `challenged()` on a 401; a second 401 in a row means the credentials are wrong.
 */
export class RegistryAuth {
  private mode: 'unknown' | 'basic' | 'bearer' = 'unknown';
  private realm = '';
  private service: string | undefined;
  private basic: string | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  /** Token requests made (for stats). */
  tokenRequests = 0;

  constructor(
    readonly registry: string,
    private readonly credentials: CredentialProvider,
    private readonly http: TokenHttp,
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header value for a request needing `scopes`, or undefined (anonymous). */
  async header(scopes: readonly string[]): Promise<string | undefined> {
    if (this.mode === 'basic') return this.basic;
    if (this.mode !== 'bearer') return undefined;
    const key = scopeKey(scopes);
    const t = this.tokens.get(key);
    if (t && t.expiresAt > this.now()) return t.header;
    return (await this.fetchToken(scopes, false)).header;
  }

  /**
   * Handle a 401: learn the scheme from the challenge and get fresh credentials or a fresh token.
   * `sent` is the Authorization value the failed request carried.
   */
  async challenged(
    wwwAuthenticate: string | undefined,
    scopes: readonly string[],
    sent: string | undefined,
  ): Promise<void> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      const realm = bearer.params.realm;
      if (!realm) throw new DadiError('EAUTH', `${this.registry}: the registry's Bearer challenge has no realm`);
      this.mode = 'bearer';
      this.realm = realm;
      this.service = bearer.params.service;
      const extra = bearer.params.scope ? bearer.params.scope.split(' ').filter(Boolean) : [];
      const all = [...new Set([...scopes, ...extra])];
      const key = scopeKey(scopes);
      const cached = this.tokens.get(key);
      if (cached && cached.header === sent) this.tokens.delete(key);
      const fresh = await this.fetchToken(all, true);
      if (all.length !== scopes.length) this.tokens.set(key, fresh);
      return;
    }
    if (basic) {
      this.mode = 'basic';
      const creds = await this.credentials(this.registry);
      if (!creds) throw noCredentials(this.registry);
      this.basic = basicAuthorization(creds);
      if (sent === this.basic) throw authFailed(this.registry);
      return;
    }
    throw new DadiError(
      'EAUTH',
      `${this.registry}: unauthorized, and the registry offers no supported auth scheme (${challenges.map((c) => c.scheme).join(', ') || 'no challenge'})`,
    );
  }

  /** Forget every token (e.g. after a credentials change). */
  reset(): void {
    this.tokens.clear();
    this.basic = undefined;
    if (this.mode === 'basic') this.mode = 'unknown';
  }

  private fetchToken(scopes: readonly string[], force: boolean): Promise<CachedToken> {
    const key = scopeKey(scopes);
    const inflight = this.pending.get(key);
    if (inflight) return inflight;
    if (!force) {
      const t = this.tokens.get(key);
      if (t && t.expiresAt > this.now()) return Promise.resolve(t);
    }
    const p = this.requestToken(scopes).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private async requestToken(scopes: readonly string[]): Promise<CachedToken> {
    const creds = await this.credentials(this.registry);
    const started = this.now();
    let url: URL;
    try {
      url = new URL(this.realm);
    } catch {
      throw new DadiError('EAUTH', `${this.registry}: the token realm ${JSON.stringify(this.realm)} is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new DadiError('EAUTH', `${this.registry}: the token realm must be http(s)`);
    }
    let res: { status: number; body: string };
    this.tokenRequests++;
    if (creds && creds.username === '<token>') {
      // OAuth2 refresh-token grant (docker's identity tokens).
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.password,
        client_id: 'dadi',
      });
      if (this.service) form.set('service', this.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.http(url.toString(), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
    } else {
      if (this.service) url.searchParams.set('service', this.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds && creds.username !== '') headers.authorization = basicAuthorization(creds);
      res = await this.http(url.toString(), { method: 'GET', headers });
    }
    if (res.status === 401 || res.status === 403) {
      throw creds ? authFailed(this.registry) : noCredentials(this.registry);
    }
    if (res.status !== 200) {
      throw new DadiError('EAUTH', `${this.registry}: the token server ${url.host} answered HTTP ${res.status}`);
    }
    let v: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      v = JSON.parse(res.body) as typeof v;
    } catch {
      throw new DadiError('EAUTH', `${this.registry}: the token server ${url.host} sent invalid JSON`);
    }
    const token =
      typeof v.token === 'string' && v.token ? v.token : typeof v.access_token === 'string' ? v.access_token : '';
    if (!token) throw new DadiError('EAUTH', `${this.registry}: the token server ${url.host} sent no token`);
    const expiresIn = typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : DEFAULT_EXPIRES_IN;
    // Renew a little before expiry: 10% early, at most 10 s, so a token is never used at its edge.
    const margin = Math.min(10, expiresIn * 0.1);
    const t: CachedToken = { header: `Bearer ${token}`, expiresAt: started + (expiresIn - margin) * 1000 };
    this.tokens.set(scopeKey(scopes), t);
    return t;
  }
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}

export function authFailed(registry: string): DadiError {
  return new DadiError(
    'EAUTH',
    `${registry}: authentication failed: the registry rejected the credentials (check them, or run \`dadi login ${registry}\`)`,
  );
}

export function noCredentials(registry: string): DadiError {
  return new DadiError(
    'EAUTH',
    `${registry}: authentication required and no credentials found (run \`dadi login ${registry}\` or set DADI_REGISTRY_USER/DADI_REGISTRY_PASSWORD)`,
  );
}

export function accessDenied(registry: string, what: string): DadiError {
  return new DadiError('EAUTH', `${registry}: access denied to ${what}`);
}
