// Issue #15 acceptance: against a token-auth registry, a cold start (`dadi run` of an image pulled
// lazily by the daemon it starts on demand) with the daemon logging at `trace` — every registry
// request with its headers — leaves no log line holding the password or any token the token server
// issued. The trace lines must be there with their Authorization headers censored: a log that said
// nothing would pass the first check without proving anything.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDACTED } from '../../src/log/redact.js';
import { runDadi } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { leftovers, pushRootfsImage, shutDownAndScrub } from './runtime-helpers.js';

const WHAT = 'log redaction against a token-auth registry';
const HAVE = haveRegistry(WHAT) && requireOrSkip(WHAT, missing({ root: true, files: ['/dev/fuse'], tools: ['runc'] }));

type LogLine = { level: string; msg: string; request?: { headers?: Record<string, unknown> } };

describe.skipIf(!HAVE)(WHAT, () => {
  let root: string;
  let reg: TestRegistry;
  let ref: string;
  let state: string;
  let env: NodeJS.ProcessEnv;
  const password = 'Pa55-w0rd!secret-dadi';

  beforeAll(async () => {
    // State deep in a private folder (FUSE mount points must never sit directly under /tmp).
    root = await mkdtemp('/var/tmp/dadi-redaction-');
    state = join(root, 'state');
    reg = await startRegistry({ auth: 'token', users: { ops: password } });
    const config = join(root, 'config.yaml');
    // logPath empty: the daemon started on demand logs to stderr, which the client sends to <state>/daemon.log.
    await writeFile(
      config,
      `logConfig:\n  logLevel: trace\n  logPath: ""\ncacheConfig:\n  cacheDir: ${join(root, 'cache')}\n`,
    );
    env = {
      DADI_STATE: state,
      DADI_CONFIG: config,
      DADI_REGISTRY_USER: 'ops',
      DADI_REGISTRY_PASSWORD: password,
      DADI_REGISTRY_HOST: reg.host,
    };
    // The push reads the same credentials from the environment.
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      ref = await pushRootfsImage(root, reg.host, 'dadi/secret', { Cmd: ['/bin/cat', '/etc/os-release'] });
    } finally {
      for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }, 120_000);

  afterAll(async () => {
    try {
      if (state) {
        await shutDownAndScrub(state, []);
        expect(await leftovers(state, [])).toEqual([]);
      }
    } finally {
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  it('no line at any level holds the password or a token; the Authorization headers logged are censored', async () => {
    const issuedBefore = reg.tokenRequests.length;
    const r = await runDadi(['run', '--rm', ref], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('dadi test rootfs');
    // The daemon fetched its own tokens for the cold start.
    const tokens = reg.tokenRequests.flatMap((t) => (t.token ? [t.token] : []));
    expect(reg.tokenRequests.length).toBeGreaterThan(issuedBefore);
    expect(tokens.length).toBeGreaterThan(0);

    const text = await readFile(join(state, 'daemon.log'), 'utf8');
    const lines = text.split('\n').filter(Boolean);
    const secrets = [
      password,
      encodeURIComponent(password),
      Buffer.from(`ops:${password}`).toString('base64'),
      ...tokens,
      // A token's signature alone is as good as the token for a replay: not even that part may appear.
      ...tokens.map((t) => t.split('.')[2]!),
    ];
    for (const line of [...lines, ...r.stderr.split('\n')]) {
      for (const s of secrets) expect(line.includes(s), `a log line holds a secret: ${line.slice(0, 300)}`).toBe(false);
    }

    // The log did carry the requests, at trace, with their credentials censored: Basic to the token
    // server and Bearer to the registry.
    const parsed = lines.map((l) => JSON.parse(l) as LogLine);
    const traced = parsed.filter((l) => l.level === 'trace' && l.request?.headers);
    const authz = traced.map((l) => l.request!.headers!.authorization).filter((v) => v !== undefined);
    expect(traced.length).toBeGreaterThan(3);
    expect(authz.length).toBeGreaterThanOrEqual(2);
    expect(new Set(authz)).toEqual(new Set([REDACTED]));
    expect(traced.some((l) => l.msg.startsWith('GET http://127.0.0.1:') && l.msg.includes('/token?'))).toBe(true);
    expect(traced.some((l) => /GET \S+\/v2\/dadi\/secret\/blobs\/sha256:/.test(l.msg))).toBe(true);
  }, 120_000);
});
