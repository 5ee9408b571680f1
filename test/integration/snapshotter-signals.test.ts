// `dadi snapshotter` as a service: SIGHUP reads the log settings of its config file again (here a
// new logPath: the next lines land in the new file), SIGTERM stops it cleanly (exit 0).

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missing, requireOrSkip } from '../require.js';

const entry = join(import.meta.dirname, '../../src/cli/entry.ts');
const HAVE = requireOrSkip(
  'snapshotter signals',
  missing({
    files: ['/usr/share/gocode/src/github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto'],
    hint: 'apt-get install golang-github-containerd-containerd-dev',
  }),
);

describe.skipIf(!HAVE)('dadi snapshotter signals', () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('SIGHUP reopens the log where the config now says; SIGTERM stops it', async () => {
    // Deep in a private folder: the snapshotter's root may hold mount points.
    dir = await mkdtemp('/var/tmp/dadi-snap-signals-');
    const config = join(dir, 'config.yaml');
    const logs = [join(dir, 'a.log'), join(dir, 'b.log')] as const;
    const yaml = (log: string) =>
      `logConfig:\n  logPath: ${log}\nsnapshotter:\n  address: ${join(dir!, 'run/snap.sock')}\n  root: ${join(dir!, 'root')}\n`;
    await writeFile(config, yaml(logs[0]));
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'snapshotter', '--config', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    const text = (p: string) => readFile(p, 'utf8').catch(() => '');
    const until = async (what: string, cond: () => Promise<boolean>) => {
      for (let i = 0; i < 600; i++) {
        if (await cond()) return;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${what} (stderr: ${stderr})`);
    };
    try {
      await until('serving', async () => (await text(logs[0])).includes('"msg":"serving '));
      await writeFile(config, yaml(logs[1]));
      child.kill('SIGHUP');
      await until('the reload', async () => (await text(logs[1])).includes('reloaded the log settings'));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(await text(logs[1])).toContain('"msg":"stopped"');
      expect(await text(logs[0])).not.toContain('stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
