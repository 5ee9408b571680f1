// The long-running commands refuse an invalid config file before they start anything, exiting
// non-zero with one line naming the file, the line and the key (issue #15's acceptance).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDadi } from '../cli.js';

// The thread pool size set up front: `dadi daemon` then runs in one process (no re-exec), faster.
const dadi = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runDadi(args, { env: { UV_THREADPOOL_SIZE: '8', ...env } });

describe('long-running commands and an invalid config', () => {
  let dir: string;
  const typo = () => join(dir, 'typo.yaml');
  const wrongType = () => join(dir, 'type.yaml');
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-config-cli-'));
    await writeFile(typo(), 'logConfig:\n  logLevel: debug\n  logLevle: info\n');
    await writeFile(wrongType(), 'download:\n  maxMBps: fast\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  // Each command gets a state folder and socket of its own, so a config the check wrongly let
  // through would fail differently (or start) rather than touch this host's daemon.
  const commands: Array<[string, (file: string) => string[]]> = [
    ['daemon', (f) => ['daemon', '--config', f, '--state', join(dir, 'state')]],
    [
      'snapshotter',
      (f) => ['snapshotter', '--config', f, '--address', join(dir, 's.sock'), '--root', join(dir, 'root')],
    ],
  ];

  for (const [name, args] of commands) {
    it(`dadi ${name}: a typo and a wrong type each exit 1 naming the key`, async () => {
      const a = await dadi(args(typo()));
      expect(a.code).toBe(1);
      expect(a.stderr.trim()).toBe(
        `dadi: config ${typo()} line 3: unknown key logConfig.logLevle; did you mean logConfig.logLevel? ` +
          '(known here: logLevel, logPath)',
      );
      const b = await dadi(args(wrongType()));
      expect(b.code).toBe(1);
      expect(b.stderr.trim()).toBe(
        `dadi: config ${wrongType()} line 2: download.maxMBps: expected number, got a string "fast"`,
      );
    });
  }

  it('$DADI_CONFIG names the file when --config is absent; a missing named file is an error', async () => {
    const r = await dadi(['daemon', '--state', join(dir, 'state')], { DADI_CONFIG: typo() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown key logConfig.logLevle');
    const m = await dadi(['daemon', '--config', join(dir, 'nope.yaml'), '--state', join(dir, 'state')]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/^dadi: config .*nope\.yaml: ENOENT/);
  });

  it('clients find the block cache where the config file puts it (and $DADI_CACHE_DIR still wins)', async () => {
    const cfg = join(dir, 'cache.yaml');
    const configured = join(dir, 'configured-cache');
    await writeFile(cfg, `cacheConfig:\n  cacheDir: ${configured}\n  cacheSizeGB: 2\n`);
    const ls = await dadi(['cache', 'ls', '--json'], { DADI_CONFIG: cfg, DADI_CACHE_DIR: '' });
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout)).toMatchObject({ dir: configured });
    const env = await runDadi(['cache', 'ls', '--json'], {
      env: { DADI_CONFIG: cfg, DADI_CACHE_DIR: join(dir, 'env') },
    });
    expect(JSON.parse(env.stdout)).toMatchObject({ dir: join(dir, 'env') });
    // A client refuses a broken host config, naming the key, rather than pick another cache.
    const bad = await dadi(['cache', 'ls'], { DADI_CONFIG: typo(), DADI_CACHE_DIR: '' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown key logConfig.logLevle');
  });
});
