// The daemon's `preconnect` request (the CLI's hint as it starts, cli/daemon-hint.ts): connections
// to the image's registry open at once, before the resolve; answered at once, never an error.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRemoteContext, type RemoteContext } from '../image/remote-context.js';
import { silentLogger } from '../log/logger.js';
import { sendRequest } from './client.js';
import { Daemon } from './daemon.js';
import { statePaths } from './state.js';

describe('daemon preconnect request', () => {
  let dir: string;
  let daemon: Daemon;
  let socket: string;
  let ctx: Promise<RemoteContext> | undefined;
  const accepted: Socket[] = [];
  const registry = createServer((s) => accepted.push(s));
  let port = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-preconnect-'));
    await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
    port = (registry.address() as { port: number }).port;
    daemon = await Daemon.start({
      stateDir: join(dir, 'state'),
      logger: silentLogger,
      remote: () => (ctx ??= openRemoteContext({ cacheDir: join(dir, 'cache'), log: () => {} })),
      resolveImage: async () => ({}),
    });
    socket = statePaths(join(dir, 'state')).socket;
  });
  afterAll(async () => {
    await daemon?.stop();
    await (await ctx)?.close();
    for (const s of accepted) s.destroy();
    registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("opens connections to the reference's registry before any request to it", async () => {
    expect(await sendRequest(socket, { op: 'preconnect', ref: `127.0.0.1:${port}/app:v1` })).toEqual({});
    for (let i = 0; i < 200 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    // Until the last of them is in (they open in parallel): the next test counts from there.
    for (let i = 0, seen = -1; i < 50 && seen !== accepted.length; i++) {
      seen = accepted.length;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(accepted.length).toBeGreaterThan(1);
  });

  it('answers a reference it cannot parse, and does nothing with it', async () => {
    const before = accepted.length;
    expect(await sendRequest(socket, { op: 'preconnect', ref: 'UPPER/case:@@' })).toEqual({});
    expect(await sendRequest(socket, { op: 'preconnect', ref: 42 as never })).toEqual({});
    expect(accepted.length).toBe(before);
  });
});
