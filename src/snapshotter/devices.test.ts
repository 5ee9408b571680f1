// The snapshotter's device set talks to the daemon of its state folder: one connection per request
// (no probe before each), and a daemon that went away is looked for again at the next request.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { statePaths } from '../runtime/state.js';
import { daemonDevices } from './devices.js';

describe('daemonDevices', () => {
  let dir: string;
  let server: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-devices-'));
  });
  afterEach(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });

  const stop = () =>
    new Promise<void>((res) => {
      if (!server) return res();
      server.close(() => res());
      server = undefined;
    });

  /** A stand-in daemon on the state folder's socket: answers every request, counts connections and ops. */
  const serve = async () => {
    const seen = { connections: 0, ops: [] as string[] };
    server = createServer((c) => {
      seen.connections++;
      let buf = '';
      c.on('data', (d) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        seen.ops.push((JSON.parse(buf.slice(0, nl)) as { op: string }).op);
        c.end(`${JSON.stringify({ ok: true, result: { started: true } })}\n`);
      });
      c.on('error', () => {});
    });
    await new Promise<void>((res) => server!.listen(statePaths(dir).socket, () => res()));
    return seen;
  };

  it('sends each request on one connection of its own, without a probe before it', async () => {
    const seen = await serve();
    const devices = daemonDevices(dir);
    for (let i = 0; i < 3; i++) await devices.launch!(join(dir, 'mnt'), { files: ['/etc/passwd'] });
    await devices.umount(join(dir, 'mnt'));
    expect(seen.ops).toEqual(['launch', 'launch', 'launch', 'umount']);
    // The first request's client probed the socket once (DaemonClient.connect); none after it.
    expect(seen.connections).toBe(5);
  });

  it('a daemon that went away is an error for a launch, and the next daemon is found', async () => {
    await serve();
    const devices = daemonDevices(dir);
    await devices.launch!(join(dir, 'mnt'), { files: [] });
    await stop();
    await expect(devices.launch!(join(dir, 'mnt'), { files: [] })).rejects.toThrow(/no dadi daemon answers/);
    const seen = await serve();
    await devices.launch!(join(dir, 'mnt'), { files: [] });
    expect(seen.ops).toEqual(['launch']);
  });
});
