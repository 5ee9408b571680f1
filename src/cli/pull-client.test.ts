// The native `dadi pull` (pull-client.c), built here as the build builds it: the request it sends to
// a snapshotter's line socket (one served by this test), what it prints of the answer (as
// pull-remote.ts prints it), and every command line it leaves to the pull bundle, which it then
// runs with the same arguments (a stand-in start.cjs here prints what it was given).

import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPullClient } from '../../scripts/bundle-cli.js';
import { run } from '../../test/cli.js';
import { missing, requireOrSkip } from '../../test/require.js';
import type { PullLineAnswer, PullReply, PullRequest } from '../snapshotter/pull-wire.js';

const HAVE = requireOrSkip(
  'native dadi pull',
  missing({ tools: [process.env.CC || 'cc'], hint: 'apt-get install gcc' }),
);

let dir: string;
let client: string;
let server: Server;
let address: string;
/** What the snapshotter stand-in answers next (a line, without its newline), and what it was asked. */
let answer = '';
let asked: string[] = [];

beforeAll(async () => {
  if (!HAVE) return;
  dir = await mkdtemp(join(tmpdir(), 'dadi-pull-client-'));
  client = join(dir, 'dadi-pull');
  expect(await buildPullClient(client)).toBe(true);
  // The bundle's launcher, as the client finds it beside itself: it prints its argv.
  await writeFile(join(dir, 'start.cjs'), 'console.log(JSON.stringify({ bundle: process.argv.slice(2) }));\n');
  await chmod(join(dir, 'start.cjs'), 0o644);
  address = join(dir, 'snap.sock');
  server = createServer((s) => {
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
      const nl = got.indexOf('\n');
      if (nl < 0) return;
      asked.push(got.slice(0, nl));
      s.end(`${answer}\n`);
    });
  });
  await new Promise<void>((res) => server.listen(`${address}.pull`, res));
}, 60_000);
afterAll(async () => {
  if (!HAVE) return;
  await new Promise((res) => server.close(res));
  await rm(dir, { recursive: true, force: true });
});

const REPLY: PullReply = {
  name: 'registry.test:5000/app:v1',
  manifestDigest: `sha256:${'a'.repeat(64)}`,
  layers: 3,
  registryBytes: 123456,
  steps: [
    { step: 'resolve', ms: 22 },
    { step: 'config', ms: 25 },
    { step: 'layer snapshots', ms: 10 },
  ],
};

function pull(args: string[], reply: PullLineAnswer | string = { reply: REPLY }) {
  answer = typeof reply === 'string' ? reply : JSON.stringify(reply);
  asked = [];
  return run(client, ['pull', '--containerd-address', '/run/containerd.sock', ...args]);
}

describe.skipIf(!HAVE)('native dadi pull', () => {
  it('sends the request pull-remote.ts sends, strings escaped, defaults filled in', async () => {
    const ref = 'host:1/a"b\\c\u0001é:v1';
    const r = await pull(['--snapshotter-address', address, '--insecure', '--platform', 'linux/arm64', ref]);
    expect(r.stderr).toMatch(/^pulled /);
    expect(r.code).toBe(0);
    const want: PullRequest = {
      ref,
      containerdAddress: '/run/containerd.sock',
      namespace: 'default',
      snapshotter: 'dadi',
      insecure: true,
      platform: 'linux/arm64',
    };
    expect(asked).toHaveLength(1);
    expect(JSON.parse(asked[0]!)).toEqual(want);
    await pull([
      '-n',
      'bench',
      '--snapshotter',
      'dadi2',
      '--hosts-dir',
      '/etc/hosts.d',
      '--snapshotter-address',
      address,
      'x',
    ]);
    expect(JSON.parse(asked[0]!)).toEqual({
      ref: 'x',
      containerdAddress: '/run/containerd.sock',
      namespace: 'bench',
      snapshotter: 'dadi2',
      hostsDir: '/etc/hosts.d',
    });
  });

  it('prints the name on stdout and the summary on stderr, as pull-remote.ts does', async () => {
    const r = await pull(['--snapshotter-address', address, 'x']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${REPLY.name}\n`);
    expect(r.stderr).toBe(
      `pulled ${REPLY.name} (${REPLY.manifestDigest}, 3 DADI layers left remote; 123456 bytes fetched)\n`,
    );
  });

  it('prints --json as JSON.stringify(…, null, 2), the steps only with --timings', async () => {
    const { steps: _, ...result } = REPLY;
    const plain = await pull(['--json', '--snapshotter-address', address, 'x']);
    expect(plain.stdout).toBe(`${JSON.stringify(result, null, 2)}\n`);
    const timed = await pull(['--json', '--timings', '--snapshotter-address', address, 'x']);
    expect(timed.code).toBe(0);
    const got = JSON.parse(timed.stdout) as PullReply;
    // Byte for byte what node prints of the same value.
    expect(timed.stdout).toBe(`${JSON.stringify(got, null, 2)}\n`);
    expect(Object.keys(got)).toEqual(['name', 'manifestDigest', 'layers', 'registryBytes', 'steps']);
    expect(got.steps.map((s) => s.step)).toEqual([
      'CLI start',
      'request to the snapshotter',
      ...REPLY.steps.map((s) => s.step),
    ]);
    expect(got.steps.slice(2)).toEqual(REPLY.steps);
    for (const s of got.steps) expect(Number.isInteger(s.ms) && s.ms >= 0).toBe(true);
    // Nested and empty values, unicode and escapes as node writes them.
    const odd = {
      ...REPLY,
      name: 'n\u00e9\u2028"\\',
      extra: { a: [], b: {}, c: [1, { d: null }], e: -1.5e-7 },
      steps: [],
    };
    const r = await pull(['--json', '--snapshotter-address', address, 'x'], { reply: odd as PullReply });
    const { steps: __, ...oddResult } = odd;
    expect(r.stdout).toBe(`${JSON.stringify(oddResult, null, 2)}\n`);
  });

  it('prints --timings to stderr: its own two steps, then the snapshotter steps', async () => {
    const r = await pull(['--timings', '--snapshotter-address', address, 'x']);
    expect(r.code).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.map((l) => l.replace(/^ *\d+ ms {2}/, ''))).toEqual([
      'CLI start',
      'request to the snapshotter',
      'resolve',
      'config',
      'layer snapshots',
      `pulled ${REPLY.name} (${REPLY.manifestDigest}, 3 DADI layers left remote; 123456 bytes fetched)`,
    ]);
    expect(lines[2]).toBe('    22 ms  resolve');
  });

  it("reports a failed pull with the snapshotter's message, terminal-safe, exit 1", async () => {
    const r = await pull(['--snapshotter-address', address, 'x'], {
      error: { code: 'ENOTFOUND', message: 'registry.test/app:v1: not found \u001b[31m\ufffd' },
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('dadi: registry.test/app:v1: not found \\x1b[31m\\ufffd\n');
  });

  it('reports an answer it cannot read, exit 1', async () => {
    for (const bad of ['{"reply":', 'not json', '{"something":"else"}', '{"reply":{"name":"x"}}']) {
      const r = await pull(['--snapshotter-address', address, 'x'], bad);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^dadi: dadi snapshotter ${address}: a (pull answer that is not JSON|malformed pull answer)\\n$`),
      );
    }
  });

  it('leaves every other command line to the pull bundle, with the same arguments', async () => {
    const none = join(dir, 'none.sock');
    const cases = [
      ['--snapshotter-address', none, 'x'], // nothing listens: the bundle asks over gRPC or pulls in-process
      ['x'], // the config file names the snapshotter
      ['--config', '/etc/dadi/config.yaml', '--snapshotter-address', address, 'x'],
      ['--snapshotter-address', address, '--help'],
      ['--snapshotter-address', address, 'x', 'y'],
      ['--snapshotter-address', address, '--namespace=bench', 'x'],
      ['--snapshotter-address'],
    ];
    for (const args of cases) {
      const r = await pull(args);
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({
        bundle: ['pull', 'pull', '--containerd-address', '/run/containerd.sock', ...args],
      });
      expect(r.code).toBe(0);
      expect(asked).toEqual([]);
    }
  });
});
