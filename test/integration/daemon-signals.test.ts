// `dadi daemon` as a service manager drives it, as root: SIGHUP reloads the config file (the log
// level changes at once; a key that needs a restart is named; an invalid file is refused and the
// running config stays), SIGTERM while a container runs stops the container, lets its client clean
// up, and leaves nothing behind (no mount, loop device, runc container, cgroup or process).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient, listContainers } from '../../src/runtime/index.js';
import { missing, requireOrSkip } from '../require.js';
import { type LogLine, readJsonLog, until } from './daemon-process.js';
import { buildRootfs, emergencyCleanup, imageToLayer, leftovers, makeExt4, pidAlive } from './runtime-helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, '../../src/cli/entry.ts');
const canRun = requireOrSkip(
  'daemon signal tests',
  missing({
    root: true,
    files: ['/dev/fuse'],
    tools: ['runc', 'mkfs.ext4', 'losetup'],
    hint: 'apt-get install runc fuse3 e2fsprogs mount',
  }),
);

describe.skipIf(!canRun)('daemon signals', () => {
  let root: string;
  let layer: string;
  const started: ChildProcess[] = [];
  const names = ['sigterm-c'];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dadi-signals-'));
    await buildRootfs(join(root, 'rootfs'));
    await makeExt4(join(root, 'rootfs'), join(root, 'disk.img'));
    layer = join(root, 'base.layer');
    await imageToLayer(join(root, 'disk.img'), layer);
    await rm(join(root, 'disk.img'));
  }, 120_000);

  afterAll(async () => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (!root) return;
    for (const s of ['hup', 'term']) await emergencyCleanup(join(root, s, 'state'), names);
    await rm(root, { recursive: true, force: true });
  });

  /** `dadi daemon --config` on a state folder of its own, logging to a file at `level`. */
  async function startDaemon(name: string, level: string) {
    const dir = join(root, name);
    const state = join(dir, 'state');
    const logPath = join(dir, 'daemon.log');
    const config = join(dir, 'config.yaml');
    const yaml = (lvl: string, extra = '') =>
      `logConfig:\n  logLevel: ${lvl}\n  logPath: ${logPath}\ncacheConfig:\n  cacheDir: ${join(dir, 'cache')}\n${extra}`;
    await mkdir(dir, { recursive: true });
    await writeFile(config, yaml(level));
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'daemon', '--config', config, '--state', state], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '128' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    started.push(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const log = async (): Promise<LogLine[]> => readJsonLog(logPath);
    await until(`the daemon on ${state} (${stderr})`, async () =>
      (await log()).some((l) => l.msg.startsWith('listening')),
    );
    const client = await DaemonClient.connect({ stateDir: state, autoStart: false });
    return { child, state, config, yaml, log, exited, client, stderr: () => stderr };
  }

  it('SIGHUP reloads the config: the log level changes, restart-only keys are named, a bad file is refused', async () => {
    const d = await startDaemon('hup', 'info');
    await d.client.ping();
    expect((await d.log()).filter((l) => l.level === 'debug')).toEqual([]);

    await writeFile(d.config, d.yaml('debug', 'download:\n  maxMBps: 7\nmetrics:\n  address: 127.0.0.1:9\n'));
    d.child.kill('SIGHUP');
    await until('the reload', async () => (await d.log()).some((l) => l.msg.startsWith('reloaded config')));
    const reloaded = (await d.log()).find((l) => l.msg.startsWith('reloaded config'))!;
    expect(reloaded.msg).toBe('reloaded config: applied logConfig.logLevel, download.maxMBps');
    expect((await d.log()).find((l) => l.level === 'warn')?.msg).toBe(
      'reload: metrics.address changed; these apply at the next restart',
    );
    await d.client.ping();
    await until('a debug line', async () => (await d.log()).some((l) => l.level === 'debug' && l.op === 'ping'));

    await writeFile(d.config, 'logConfig:\n  logLevle: trace\n');
    d.child.kill('SIGHUP');
    await until('the refusal', async () => (await d.log()).some((l) => l.level === 'error'));
    expect((await d.log()).find((l) => l.level === 'error')!.msg).toMatch(
      /^reload refused, the running config stays: config .* line 2: unknown key logConfig\.logLevle/,
    );
    expect((await d.client.ping()).pid).toBe(d.child.pid);

    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(await leftovers(d.state, [])).toEqual([]);
  }, 90_000);

  it('SIGTERM while a container runs: the container is stopped, its client cleans up, nothing is left', async () => {
    const d = await startDaemon('term', 'info');
    const run = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(here, 'runtime-run-child.ts'),
        d.state,
        layer,
        names[0]!,
        'sh',
        '-c',
        'echo started; sleep 60',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(run);
    let out = '';
    run.stdout!.on('data', (b) => (out += b));
    run.stderr!.on('data', (b) => (out += b));
    const runExited = new Promise<number | null>((r) => run.on('exit', (code) => r(code)));
    await until(`the container's output (${out})`, () => out.includes('started'), 60_000);
    expect((await d.client.ps()).map((x) => x.label)).toEqual([names[0]]);

    d.child.kill('SIGTERM');
    expect(await d.exited, d.stderr()).toBe(0);
    // The client saw its container die and removed it (--rm) while the daemon still served it.
    expect(await runExited, out).toBe(0);
    const result = JSON.parse(out.trim().split('\n').pop()!) as { exitCode: number };
    expect([137, 143]).toContain(result.exitCode);
    const msgs = (await d.log()).map((l) => l.msg);
    expect(msgs).toContain(`stopping containers ${names[0]}`);
    expect(msgs.at(-1)).toBe('stopped');
    expect(await leftovers(d.state, names)).toEqual([]);
    expect(await listContainers({ stateDir: d.state })).toEqual([]);
    expect(pidAlive(d.child.pid!)).toBe(false);
  }, 120_000);
});
