import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../test/fixtures.js';
import type { Digest } from '../oci/digest.js';
import { parseImageConfig } from '../oci/manifest.js';
import { chainIds, convertedConfig, convertedManifest, goJson, goTime, uuidFromChainId } from './manifest.js';

const D = (c: string) => `sha256:${c.repeat(64)}` as Digest;

describe('convert manifest rules', () => {
  it('chainIDs and uuids', () => {
    const c = chainIds([D('a'), D('b')]);
    expect(c[0]).toBe(D('a'));
    expect(c[1]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(uuidFromChainId(D('a'))).toBe('aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
    expect(uuidFromChainId(`sha256:0123456789abcdef0123456789abcdef${'f'.repeat(32)}`)).toBe(
      '01234567-89ab-cdef-0123-456789abcdef',
    );
  });

  it('writes JSON and times as Go does', () => {
    expect(goJson({ a: 'x && y > z <' })).toBe('{"a":"x \\u0026\\u0026 y \\u003e z \\u003c"}');
    expect(goTime('2023-05-04T17:37:03.872958700Z')).toBe('2023-05-04T17:37:03.8729587Z');
    expect(goTime('2023-05-04T17:37:03.000+00:00')).toBe('2023-05-04T17:37:03Z');
    expect(goTime('2023-05-04T17:37:03+02:00')).toBe('2023-05-04T17:37:03+02:00');
  });

  it.runIf(haveFixtures('convert config re-serialisation'))(
    "re-serialises the reference's converted configs byte for byte",
    () => {
      for (const img of ['redis', 'wordpress']) {
        // config-turbo.json was written by the current image-spec struct (with ArgsEscaped):
        // feeding it back through our writer with its own diff_ids must give the same bytes.
        const turbo = readFileSync(fixture(`overlaybd/manifests/${img}/config-turbo.json`));
        const cfg = parseImageConfig(turbo, img);
        expect(convertedConfig(cfg, cfg.rootfs.diff_ids).equals(turbo)).toBe(true);
        // The native config differs only in diff_ids (and ArgsEscaped, absent from the older struct).
        const native = readFileSync(fixture(`overlaybd/manifests/${img}/config.json`), 'utf8');
        const nativeIds = parseImageConfig(native, img).rootfs.diff_ids;
        const ours = convertedConfig(cfg, nativeIds).toString('utf8').replace(',"ArgsEscaped":true', '');
        expect(ours).toBe(native);
      }
    },
  );

  it.runIf(haveFixtures('convert manifest'))("writes the reference's native manifest byte for byte", () => {
    for (const img of ['redis', 'wordpress']) {
      const want = readFileSync(fixture(`overlaybd/manifests/${img}/manifest.json`));
      const m = JSON.parse(want.toString('utf8'));
      const got = convertedManifest(m.config, m.layers, { oci: false });
      expect(got.equals(want)).toBe(true);
    }
  });
});
