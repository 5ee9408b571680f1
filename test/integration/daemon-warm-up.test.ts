// The host daemon's warm-up of its start path (runtime/warm-up.ts) as processes run it: `dadi
// daemon` (a service, started ahead of its first container) warms up once listening and says so in
// its log and ping; a daemon a client starts on demand does not (that client's start is waiting).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../src/runtime/index.js';
import { until } from './daemon-process.js';

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, '../../src/cli/entry.ts');

describe('daemon warm-up', () => {
  let root: string;
  const started: ChildProcess[] = [];
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dadi-warm-daemons-'));
  });
  afterAll(async () => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('`dadi daemon` warms up once listening, reports it, and leaves no temp folder', async () => {
    const state = join(root, 'service');
    const shm = async () =>
      (await readdir('/dev/shm').catch(() => [] as string[])).filter((n) => n.startsWith('dadi-warm-up-'));
    const before = await shm();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', entry, 'daemon', '--state', state, '--cache-dir', join(root, 'service-cache')],
      { env: { ...process.env, UV_THREADPOOL_SIZE: '64' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    started.push(child);
    // Its log: JSON lines on stderr.
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    let client: DaemonClient | undefined;
    await until('the daemon to answer', async () => {
      client ??= await DaemonClient.connect({ stateDir: state, autoStart: false }).catch(() => undefined);
      return !!client;
    });
    await until('the warm-up to end', async () => (await client!.ping()).warmUp !== 'running');
    expect((await client!.ping()).warmUp).toBe('done');
    await client!.shutdown();
    await exited;
    const lines = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { component?: string; msg: string });
    const done = lines.find((l) => l.component === 'daemon/warm-up');
    expect(done?.msg).toMatch(/^done in \d+ ms \(image .*cold start .*\), \d+ requests to its own registry/);
    expect(await shm()).toEqual(before);
  }, 60_000);

  it('a daemon started on demand by its client runs none', async () => {
    const state = join(root, 'on-demand');
    // The daemon takes the client's environment: a cache of its own, not the host's.
    const saved = process.env.DADI_CACHE_DIR;
    process.env.DADI_CACHE_DIR = join(root, 'on-demand-cache');
    try {
      const client = await DaemonClient.connect({ stateDir: state, startTimeoutMs: 30_000 });
      try {
        expect((await client.ping()).warmUp).toBeUndefined();
      } finally {
        await client.shutdown();
      }
    } finally {
      if (saved === undefined) delete process.env.DADI_CACHE_DIR;
      else process.env.DADI_CACHE_DIR = saved;
    }
  }, 60_000);
});
