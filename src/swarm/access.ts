// The root's access check: may the requester whose registry credentials arrived (a forwarded
// Authorization header, or none) read this blob? Asked of the registry itself, with a HEAD of the
// blob carrying those credentials, and the answer cached briefly per (credentials, blob). Basic
// credentials go through a registry client (which does the token exchange token registries
// want); a Bearer token is sent as it is. Not the tracker, not chunk serving.

import { createHash } from 'node:crypto';
import { request } from 'undici';
import { DadiError } from '../errors.js';
import { RegistryClient, registryOrigin, staticCredentials } from '../registry/index.js';
import type { BlobRef } from './protocol.js';

export type AccessAnswer = { ok: true; size: number } | { ok: false; status: 401 | 403 | 404; why: string };

export interface AccessCheckOptions {
  /** How long an answer is reused, in ms (default 60 s; a denial 10 s). */
  ttlMs?: number;
  deniedTtlMs?: number;
  /** Plain HTTP for every registry (loopback registries always use it). */
  insecure?: boolean;
  now?: () => number;
}

/** Cached answers at most; the oldest go first. */
const MAX_ENTRIES = 10_000;

export class AccessCheck {
  private readonly answers = new Map<string, { answer: AccessAnswer; until: number }>();
  private readonly pending = new Map<string, Promise<AccessAnswer>>();
  /** Registry round trips made (the rest came from the cache). */
  checks = 0;

  constructor(private readonly opts: AccessCheckOptions = {}) {}

  async check(blob: BlobRef, authorization: string | undefined): Promise<AccessAnswer> {
    const now = (this.opts.now ?? Date.now)();
    const key = `${createHash('sha256')
      .update(authorization ?? '')
      .digest('hex')} ${blob.registry}/${blob.repository}@${blob.digest}`;
    const hit = this.answers.get(key);
    if (hit && hit.until > now) return hit.answer;
    let p = this.pending.get(key);
    if (!p) {
      p = this.ask(blob, authorization).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    const answer = await p;
    const ttl = answer.ok ? (this.opts.ttlMs ?? 60_000) : (this.opts.deniedTtlMs ?? 10_000);
    this.answers.delete(key);
    this.answers.set(key, { answer, until: now + ttl });
    if (this.answers.size > MAX_ENTRIES) this.answers.delete(this.answers.keys().next().value!);
    return answer;
  }

  private async ask(blob: BlobRef, authorization: string | undefined): Promise<AccessAnswer> {
    this.checks++;
    const what = `${blob.registry}/${blob.repository}@${blob.digest}`;
    if (authorization && /^bearer /i.test(authorization)) return this.headWithToken(blob, authorization, what);
    const creds = authorization ? basicCredentials(authorization) : undefined;
    if (authorization && !creds) return { ok: false, status: 401, why: 'unsupported Authorization scheme' };
    const client = new RegistryClient({
      // Exactly the requester's credentials: never fall back to the root's own.
      credentials: staticCredentials(creds),
      insecure: this.opts.insecure ? true : undefined,
      maxAttempts: 2,
      deadlineMs: 15_000,
    });
    try {
      const size = await client.statBlob({ registry: blob.registry, repository: blob.repository }, blob.digest);
      if (size === undefined) return { ok: false, status: 404, why: `${what}: blob not found` };
      return { ok: true, size };
    } catch (e) {
      if (e instanceof DadiError && e.code === 'EAUTH') return { ok: false, status: 403, why: e.message };
      throw e;
    } finally {
      await client.close();
    }
  }

  private async headWithToken(blob: BlobRef, authorization: string, what: string): Promise<AccessAnswer> {
    const url = `${registryOrigin(blob.registry, { insecure: this.opts.insecure ? true : undefined })}/v2/${blob.repository}/blobs/${blob.digest}`;
    const res = await request(url, {
      method: 'HEAD',
      headers: { authorization },
      headersTimeout: 15_000,
    });
    await res.body.dump();
    if (res.statusCode === 200) {
      const size = Number(res.headers['content-length']);
      if (Number.isSafeInteger(size) && size >= 0) return { ok: true, size };
    }
    if (res.statusCode === 404) return { ok: false, status: 404, why: `${what}: blob not found` };
    return { ok: false, status: 403, why: `${what}: the registry answered ${res.statusCode} to these credentials` };
  }
}

function basicCredentials(authorization: string): { username: string; password: string } | undefined {
  const m = /^basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization.trim());
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
