// The daemon's side of the warm-up: workArrived stays quiet through requests that ask for no work
// (ping, ps, status, the preconnect hint) and aborts at the first that does, or when the daemon
// stops; ping reports where the warm-up is.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import { sendRequest } from './client.js';
import { Daemon } from './daemon.js';
import type { PingResult } from './protocol.js';
import { statePaths } from './state.js';

describe('daemon workArrived', () => {
  let dir: string | undefined;
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    daemon = dir = undefined;
  });

  async function start(): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'dadi-warm-daemon-'));
    daemon = await Daemon.start({ stateDir: join(dir, 'state'), logger: silentLogger });
    return statePaths(join(dir, 'state')).socket;
  }

  it('aborts at the first request asking for work, not before', async () => {
    const socket = await start();
    const d = daemon!;
    expect((await sendRequest<PingResult>(socket, { op: 'ping' })).warmUp).toBeUndefined();
    d.warmUp = 'running';
    expect((await sendRequest<PingResult>(socket, { op: 'ping' })).warmUp).toBe('running');
    await sendRequest(socket, { op: 'ps' });
    await sendRequest(socket, { op: 'status' });
    await sendRequest(socket, { op: 'preconnect', ref: '127.0.0.1:1/app:v1' });
    expect(d.workArrived.aborted).toBe(false);
    expect(await sendRequest(socket, { op: 'open', layers: [] })).toEqual({ opening: 0 });
    expect(d.workArrived.aborted).toBe(true);
    expect(d.workArrived.reason).toBe('client');
  });

  it('aborts when the daemon stops', async () => {
    await start();
    const d = daemon!;
    expect(d.workArrived.aborted).toBe(false);
    await d.stop();
    expect(d.workArrived.aborted).toBe(true);
    expect(d.workArrived.reason).toBe('stopping');
  });
});
