// The daemon's policy for errors nobody handled (src/runtime/process-faults.ts), on a real
// `dadi daemon` process with a fault injector preloaded: an unhandled rejection is logged and
// counted (status errors, kind unhandled_rejection) and the daemon keeps answering; an uncaught
// exception is logged, the daemon drains and exits with status 1, leaving no socket behind.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendRequest } from '../../src/runtime/client.js';
import { statePaths } from '../../src/runtime/state.js';
import type { DaemonStatus } from '../../src/runtime/status.js';
import { type LogLine, readJsonLog, until } from './daemon-process.js';

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, '../../src/cli/entry.ts');
const injector = join(here, 'daemon-fault-injector.ts');

describe('daemon: errors nobody handled', () => {
  let dir: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-faults-'));
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps serving after an unhandled rejection (counted), drains and exits 1 after an uncaught exception', async () => {
    const state = join(dir, 'state');
    const logPath = join(dir, 'daemon.log');
    const config = join(dir, 'config.yaml');
    const faultFile = join(dir, 'fault');
    await writeFile(
      config,
      `logConfig:\n  logLevel: info\n  logPath: ${logPath}\ncacheConfig:\n  cacheDir: ${join(dir, 'cache')}\n`,
    );
    const c = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', injector, entry, 'daemon', '--config', config, '--state', state],
      {
        env: { ...process.env, UV_THREADPOOL_SIZE: '16', DADI_TEST_FAULT_FILE: faultFile },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    child = c;
    let stderr = '';
    c.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => c.on('exit', (code) => r(code)));
    const log = async (): Promise<LogLine[]> => readJsonLog(logPath);
    await until(`the daemon listening (${stderr})`, async () =>
      (await log()).some((l) => l.msg.startsWith('listening')),
    );
    const socket = statePaths(state).socket;

    await writeFile(faultFile, 'reject');
    c.kill('SIGUSR2');
    await until('the rejection logged', async () =>
      (await log()).some((l) => l.level === 'error' && l.msg.includes('unhandled promise rejection')),
    );
    const line = (await log()).find((l) => l.msg.includes('unhandled promise rejection'))!;
    expect(line.msg).toContain('a stray rejection the test made');
    expect((await sendRequest<{ pid: number }>(socket, { op: 'ping' })).pid).toBe(c.pid);
    const status = await sendRequest<DaemonStatus>(socket, { op: 'status' });
    expect(status.errors).toContainEqual({ kind: 'unhandled_rejection', code: 'EIO', count: 1 });

    await writeFile(faultFile, 'throw');
    c.kill('SIGUSR2');
    expect(await exited, stderr).toBe(1);
    const msgs = (await log()).map((l) => l.msg);
    expect(msgs.some((m) => m.startsWith('uncaught exception: draining') && m.includes('a stray exception'))).toBe(
      true,
    );
    expect(msgs.at(-1)).toBe('stopped');
    expect(existsSync(socket)).toBe(false);
  }, 60_000);
});
