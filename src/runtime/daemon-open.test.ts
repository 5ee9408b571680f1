// The daemon's `open` request (the snapshotter's pull names an image's layers before containerd
// asks for their mount): registry layers start opening, other kinds are left to the mount, and
// malformed or oversized requests are refused with a clear error. Also the `launch` request's refusals.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import { sendRequest } from './client.js';
import { Daemon } from './daemon.js';
import { registryLayerSpecs } from './layer-spec.js';
import { MAX_LAUNCH_ARG_LENGTH } from './protocol.js';
import { statePaths } from './state.js';

describe('daemon open request', () => {
  let dir: string;
  let daemon: Daemon;
  let socket: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-open-'));
    daemon = await Daemon.start({ stateDir: join(dir, 'state'), logger: silentLogger });
    socket = statePaths(join(dir, 'state')).socket;
  });
  afterAll(async () => {
    await daemon?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const digest = (c: string) => `sha256:${c.repeat(64)}`;

  it('starts opening the registry layers it names, and answers at once', async () => {
    const layers = [
      ...registryLayerSpecs('127.0.0.1:1', 'app', [
        { digest: digest('a'), size: 4096 },
        { digest: digest('b'), size: 8192 },
      ]),
      '/nonexistent/layer.blob',
    ];
    // Opening fails later (nothing listens on port 1, and this daemon has no registry context):
    // that is the mount's to report, not the open's.
    expect(await sendRequest(socket, { op: 'open', layers })).toEqual({ opening: 2 });
    // Asking again while they are opening is harmless.
    expect(await sendRequest(socket, { op: 'open', layers })).toEqual({ opening: 2 });
  });

  it('refuses a request without a list of layers, or with too many', async () => {
    await expect(sendRequest(socket, { op: 'open', layers: 'x' as never })).rejects.toThrow(
      /open: layers must be a list/,
    );
    const many = registryLayerSpecs(
      '127.0.0.1:1',
      'app',
      Array.from({ length: 257 }, () => ({ digest: digest('c'), size: 1 })),
    );
    await expect(sendRequest(socket, { op: 'open', layers: many })).rejects.toThrow(/at most 256/);
  });

  it('launch: refuses a target where nothing is mounted, and launch files that are not bounded absolute paths', async () => {
    await expect(
      sendRequest(socket, { op: 'launch', target: join(dir, 'nothing'), launch: { files: ['/etc/ld.so.cache'] } }),
    ).rejects.toThrow(`launch: nothing is mounted at ${join(dir, 'nothing')}`);
    await expect(
      sendRequest(socket, { op: 'launch', target: join(dir, 'nothing'), launch: { files: ['etc/passwd'] } }),
    ).rejects.toThrow(/launch.files must be at most 64 absolute paths/);
    await expect(
      sendRequest(socket, {
        op: 'launch',
        target: join(dir, 'nothing'),
        launch: { exec: ['/usr/bin/python3'], args: ['-c', 'x'.repeat(MAX_LAUNCH_ARG_LENGTH + 1)] },
      }),
    ).rejects.toThrow(/launch.args must be at most 16 strings of at most 4096 characters/);
  });
});
