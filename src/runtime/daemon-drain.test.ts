// Daemon.stop (SIGTERM) without devices, in-process: requests in flight finish and get their
// answers, new work is refused meanwhile, and a request that outlives daemon.drainTimeout is cut.
// Devices and containers on SIGTERM: test/integration/daemon-signals.test.ts (root).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import { sendRequest } from './client.js';
import { Daemon } from './daemon.js';
import { statePaths } from './state.js';

describe('daemon drain on SIGTERM', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-drain-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** A daemon whose `resolve` answers when the test says so. */
  async function slowDaemon(name: string, drainTimeoutMs: number) {
    const release: Array<() => void> = [];
    const d = await Daemon.start({
      stateDir: join(dir, name),
      logger: silentLogger,
      settings: { drainTimeoutMs },
      resolveImage: (ref) => new Promise((res) => release.push(() => res({ ref }))),
    });
    const socket = statePaths(join(dir, name)).socket;
    return { d, socket, release };
  }

  it('lets the request in flight finish and answer, refusing new work meanwhile', async () => {
    const { d, socket, release } = await slowDaemon('a', 30_000);
    const answer = sendRequest<{ ref: string }>(socket, { op: 'resolve', ref: 'r/x:1' });
    for (let i = 0; i < 100 && release.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(release).toHaveLength(1);
    let stopped = false;
    const stopping = d.stop().then(() => (stopped = true));
    await expect(sendRequest(socket, { op: 'resolve', ref: 'r/y:1' })).rejects.toThrow(
      /resolve: the daemon is stopping/,
    );
    await expect(sendRequest(socket, { op: 'mount', layers: ['/x'], target: '/' })).rejects.toThrow(
      /mount: the daemon is stopping/,
    );
    expect((await sendRequest<{ pid: number }>(socket, { op: 'ping' })).pid).toBe(process.pid);
    await new Promise((r) => setTimeout(r, 200));
    expect(stopped).toBe(false);
    release[0]!();
    expect(await answer).toEqual({ ref: 'r/x:1', timings: [] });
    await stopping;
    await d.stopped;
  });

  it('cuts a request that outlives the drain timeout', async () => {
    const { d, socket, release } = await slowDaemon('b', 300);
    const answer = sendRequest(socket, { op: 'resolve', ref: 'r/x:1' }).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    for (let i = 0; i < 100 && release.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    await d.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await answer).not.toBe('answered');
    release[0]!();
  });

  it('a second stop tears down at once', async () => {
    const { d, socket, release } = await slowDaemon('c', 60_000);
    void sendRequest(socket, { op: 'resolve', ref: 'r/x:1' }).catch(() => {});
    for (let i = 0; i < 100 && release.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    const first = d.stop();
    await d.stop();
    await first;
    // Not the 60 s drain: the second stop did not wait for the request.
    expect(Date.now() - t0).toBeLessThan(5_000);
    release[0]!();
  });
});
