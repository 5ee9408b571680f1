// The root's join answers: every host joining a blob gets a grant the agents accept, one signed
// grant shared by the blob's hosts (each keeps nearly its whole lifetime), a new one once the shared
// one has lived a tenth of its life, and a grant for one blob opens no other. Over an in-memory registry.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGrant } from '../p2p/grant.js';
import { MemoryRegistry, serveRoute } from '../registry/testing.js';
import { blobQuery, HEADERS, type JoinAnswer, PATHS } from './protocol.js';
import type { P2PRoot } from './root.js';
import { startTestRoot } from './testing.js';

const GRANT_MS = 2000;

describe('P2P root join answers', () => {
  let dir: string;
  let registry: { host: string; close: () => Promise<void> };
  let root: P2PRoot;
  const digests: string[] = [];

  const join_ = async (host: string, digest: string): Promise<JoinAnswer> => {
    const res = await request(`${root.url}${PATHS.join}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        blob: { registry: registry.host, repository: 'r', digest },
        host: { id: host, address: `http://127.0.0.2:${1000 + host.length}` },
      }),
    });
    expect(res.statusCode).toBe(200);
    return (await res.body.json()) as JoinAnswer;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-root-test-'));
    const reg = new MemoryRegistry();
    digests.push(reg.putBlob('r', randomBytes(5000)), reg.putBlob('r', randomBytes(7000)));
    registry = await serveRoute(reg.route);
    root = await startTestRoot(join(dir, 'root'), { grantMs: GRANT_MS });
  });

  afterAll(async () => {
    await root?.close();
    await registry?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the hosts of a blob one valid grant, renewed after a tenth of its life, for that blob only', async () => {
    const [a, b] = digests as [string, string];
    const t0 = Date.now();
    const answers = await Promise.all(['h1', 'h2', 'h3'].map((h) => join_(h, a)));
    for (const x of answers) {
      expect(x.grant).toBe(answers[0]!.grant);
      expect(x.expiresAt).toBeGreaterThanOrEqual(t0 + GRANT_MS - GRANT_MS / 10);
      expect(checkGrant(x.publicKey, x.grant, a, Date.now())).toBeUndefined();
      expect(checkGrant(x.publicKey, x.grant, b, Date.now())).toMatch(/another blob/);
      expect(checkGrant(x.publicKey, x.grant, a, x.expiresAt)).toMatch(/expired/);
    }
    const other = await join_('h1', b);
    expect(other.grant).not.toBe(answers[0]!.grant);
    expect(checkGrant(other.publicKey, other.grant, b, Date.now())).toBeUndefined();
    // The root accepts the shared grant on its own endpoints (a chunk request).
    const res = await request(
      `${root.url}${PATHS.blob}?${blobQuery({ registry: registry.host, repository: 'r', digest: a })}`,
      {
        headers: { range: 'bytes=0-99', [HEADERS.grant]: answers[0]!.grant },
      },
    );
    expect(res.statusCode).toBe(206);
    expect((await res.body.arrayBuffer()).byteLength).toBe(100);
    // Past a tenth of its life the next join gets a new grant with a later expiry.
    await sleep(GRANT_MS / 10 + 50);
    const later = await join_('h4', a);
    expect(later.grant).not.toBe(answers[0]!.grant);
    expect(later.expiresAt).toBeGreaterThan(answers[0]!.expiresAt);
    expect(checkGrant(later.publicKey, later.grant, a, Date.now())).toBeUndefined();
  });
});
