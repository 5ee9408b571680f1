// The client's on-demand start: however many clients find no daemon at once, exactly one starts
// it, and a daemon that owns the folder but does not answer yet is waited for, not replaced. The
// daemon here is a stand-in that records each start and listens after a delay; the real one runs
// in test/integration/runtime-container.test.ts.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import {
  DAEMON_THREADPOOL_SIZE,
  DAEMON_V8_FLAGS,
  DaemonClient,
  daemonEnvironment,
  defaultDaemonCommand,
} from './client.js';
import { Daemon } from './daemon.js';
import { daemonLockKey, ProcessLock } from './lock.js';
import { statePaths } from './state.js';

/** A stand-in daemon: appends its pid to <state>/starts, listens on the socket after 300 ms, exits after 5 s. */
const FAKE_DAEMON = `
const { appendFileSync, unlinkSync } = require('node:fs');
const { createServer } = require('node:net');
const { join } = require('node:path');
const root = process.env.DADI_STATE;
appendFileSync(join(root, 'starts'), process.pid + '\\n');
setTimeout(() => {
  try { unlinkSync(join(root, 'dadi.sock')); } catch {}
  createServer((c) => c.on('error', () => {}).destroy()).listen(join(root, 'dadi.sock'));
}, 300);
setTimeout(() => process.exit(0), 5000);
`;
const fakeDaemon = [process.execPath, '-e', FAKE_DAEMON];

let dir: string;
const started: number[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-client-'));
});
afterEach(async () => {
  // Stand-in daemons exit by themselves after 5 s; stop the ones these tests started now.
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  await rm(dir, { recursive: true, force: true });
});

/** The pids of the stand-in daemons started for `state` (remembered for clean-up). */
async function startsIn(state: string): Promise<number[]> {
  const pids = (await readFile(join(state, 'starts'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  started.push(...pids.map(Number));
  return pids.map(Number);
}

describe('DaemonClient.connect starting a daemon', () => {
  it('of 8 concurrent clients over a stale socket file, exactly one starts a daemon (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const p = statePaths(join(dir, `r${round}`));
      await mkdir(p.root, { recursive: true });
      await writeFile(p.socket, ''); // stale: a plain file where the socket should be
      const clients = await Promise.all(
        Array.from({ length: 8 }, () => DaemonClient.connect({ stateDir: p.root, daemonCommand: fakeDaemon })),
      );
      const starters = clients.filter((c) => c.startedPid !== undefined);
      expect(await startsIn(p.root)).toEqual(starters.map((c) => c.startedPid));
      expect(starters).toHaveLength(1);
    }
  });

  it('waits for a daemon that owns the folder but does not answer yet, instead of starting another', async () => {
    const state = join(dir, 's');
    const p = statePaths(state);
    const owner = await ProcessLock.tryAcquire(daemonLockKey(p.root));
    expect(owner).toBeDefined();
    const server = createServer((c) => c.destroy());
    try {
      const connecting = DaemonClient.connect({ stateDir: state, daemonCommand: fakeDaemon, startTimeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 400));
      await new Promise<void>((r) => server.listen(p.socket, r));
      const c = await connecting;
      expect(c.startedPid).toBeUndefined();
      expect(await startsIn(state)).toEqual([]);
    } finally {
      server.close();
      await owner!.release();
    }
  });

  it('a second daemon on the same state folder refuses to start', async () => {
    const state = join(dir, 'd');
    const quiet = { stateDir: state, logger: silentLogger };
    const first = await Daemon.start(quiet);
    try {
      await expect(Daemon.start(quiet)).rejects.toMatchObject({ code: 'EEXIST' });
      expect((await DaemonClient.connect({ stateDir: state, autoStart: false }).then((c) => c.ping())).pid).toBe(
        process.pid,
      );
    } finally {
      await first.shutdown();
    }
    const again = await Daemon.start(quiet); // the lock went with the first daemon
    await again.shutdown();
  });
});

describe('daemonEnvironment', () => {
  it('gives the daemon back the CA file bin/dadi set aside for the client', () => {
    const env = daemonEnvironment({ PATH: '/bin', DADI_NODE_EXTRA_CA_CERTS: '/etc/ca.pem' }, '/run/x');
    expect(env).toEqual({
      PATH: '/bin',
      NODE_EXTRA_CA_CERTS: '/etc/ca.pem',
      DADI_STATE: '/run/x',
      UV_THREADPOOL_SIZE: String(DAEMON_THREADPOOL_SIZE),
    });
  });

  it("keeps a CA file the client's environment still has", () => {
    expect(daemonEnvironment({ NODE_EXTRA_CA_CERTS: '/etc/ca.pem' }, '/run/x').NODE_EXTRA_CA_CERTS).toBe('/etc/ca.pem');
    expect(daemonEnvironment({}, '/run/x')).not.toHaveProperty('NODE_EXTRA_CA_CERTS');
  });
});

describe('defaultDaemonCommand', () => {
  it("names this tree's daemon entry", () => {
    const cmd = defaultDaemonCommand();
    expect(cmd[0]).toBe(process.execPath);
    expect(existsSync(cmd.at(-1)!)).toBe(true);
    expect(cmd.at(-1)).toMatch(/[/]runtime[/]daemon-main\.ts$/);
  });

  it("starts node with the daemon's V8 flags, which this node accepts", () => {
    expect(defaultDaemonCommand().slice(1, 1 + DAEMON_V8_FLAGS.length)).toEqual(DAEMON_V8_FLAGS);
    // Node refuses to start on a V8 flag it does not know ("bad option"), so a daemon would not come up.
    const r = spawnSync(process.execPath, [...DAEMON_V8_FLAGS, '-e', 'process.stdout.write("up")'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('up');
    expect(r.status).toBe(0);
  });

  it('gives `dadi daemon` (bin/dadi) the same V8 flags', () => {
    const launcher = readFileSync(new URL('../../bin/dadi', import.meta.url), 'utf8');
    const daemonCase = launcher.slice(launcher.indexOf('\ndaemon)'));
    const exec = daemonCase.split('\n').find((l) => l.trim().startsWith('exec node'));
    expect(exec?.trim()).toBe(`exec node ${DAEMON_V8_FLAGS.join(' ')} "$here/dadi.js" "$@"`);
  });
});
