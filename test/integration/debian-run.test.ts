// Issue #5 acceptance 2 (slow; DADI_SKIP_SLOW=1 skips it): the converted multi-layer Debian image
// runs `sh -c 'cat /etc/os-release; ls /usr/bin | wc -l'` lazily from the real registry with the
// same output as the unpacked source image, and the registry serves only a fraction of the image.

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../src/runtime/index.js';
import { run, runDadi } from '../cli.js';
import { requireOrSkip, slowTestsOff } from '../require.js';
import { debianLayout, haveDebianTools } from './debian-image.js';
import { haveRegistry, startRegistry, type TestRegistry } from './registry-harness.js';
import { emergencyCleanup, leftovers } from './runtime-helpers.js';

const HAVE = requireOrSkip('Debian run', slowTestsOff()) && haveRegistry('Debian run') && haveDebianTools('Debian run');

describe.runIf(HAVE)('the converted Debian image runs lazily from the registry', () => {
  let root: string;
  let reg: TestRegistry;
  let layout: string;
  const env = () => ({ DADI_STATE: join(root, 'state'), DADI_CACHE_DIR: join(root, 'cache') });

  beforeAll(async () => {
    layout = await debianLayout();
    root = await mkdtemp('/var/tmp/dadi-debian-run-');
    reg = await startRegistry({ auth: 'none' });
  }, 600_000);

  afterAll(async () => {
    try {
      const client = await DaemonClient.connect({ stateDir: env().DADI_STATE, autoStart: false }).catch(
        () => undefined,
      );
      await client?.shutdown();
      await emergencyCleanup(env().DADI_STATE, []);
      expect(await leftovers(env().DADI_STATE, [])).toEqual([]);
    } finally {
      await reg?.stop();
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  it('prints the right os-release and /usr/bin count; fetches a fraction of the image', {
    timeout: 600_000,
  }, async () => {
    // What the source image holds, from umoci's own unpack.
    const ref = join(root, 'ref');
    const u = await run('umoci', ['unpack', '--image', `${layout}:v4`, ref]);
    expect(u.code, u.stderr).toBe(0);
    const osRelease = await readFile(join(ref, 'rootfs/etc/os-release'), 'utf8');
    const usrBin = (await readdir(join(ref, 'rootfs/usr/bin'))).length;

    const target = `${reg.host}/debian/app:dadi`;
    const conv = await runDadi(['convert', '-q', '--json', `oci:${layout}:v4`, target], { env: env() });
    expect(conv.code, conv.stderr).toBe(0);
    const converted = JSON.parse(conv.stdout);
    const imageBytes: number = converted.layers.reduce((a: number, l: { size: number }) => a + l.size, 0);

    const r = await runDadi(['run', '--rm', target, '--', 'sh', '-c', 'cat /etc/os-release; ls /usr/bin | wc -l'], {
      env: env(),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${osRelease}${usrBin}\n`);

    // A fresh cache holds exactly what was fetched from the registry.
    const ls = await runDadi(['cache', 'ls', '--json'], { env: env() });
    expect(ls.code, ls.stderr).toBe(0);
    const fetched: number = JSON.parse(ls.stdout).entries.reduce(
      (a: number, e: { cachedBytes: number }) => a + e.cachedBytes,
      0,
    );
    console.log(
      `Debian run: registry served ${fetched} of ${imageBytes} image bytes (${((100 * fetched) / imageBytes).toFixed(1)}%)`,
    );
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(imageBytes * 0.25);
  });
});
