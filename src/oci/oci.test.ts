import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { isDigest, parseDigest, sha256Of, verifyDigest } from './digest.js';
import { parseImageConfig, parseManifest } from './manifest.js';
import { isIndexType, MediaType } from './media-types.js';
import { formatPlatform, hostPlatform, parsePlatform, platformScore, selectPlatform } from './platform.js';

const D = (c: string) => `sha256:${c.repeat(64)}` as const;

describe('digest', () => {
  it('hashes and validates', () => {
    expect(sha256Of('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(isDigest(D('a'))).toBe(true);
    expect(isDigest(`sha256:${'A'.repeat(64)}`)).toBe(false);
    expect(() => parseDigest('sha256:abc')).toThrow(DadiError);
    expect(() => parseDigest(`sha512:${'a'.repeat(128)}`)).toThrow(/not supported/);
    expect(() => verifyDigest(Buffer.from('x'), D('0'), 'thing')).toThrow(/thing: digest mismatch/);
  });
});

describe('manifest', () => {
  const layer = { mediaType: MediaType.ociLayer, digest: D('b'), size: 10, annotations: { k: 'v' } };
  const man = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: D('a'), size: 2 },
    layers: [layer],
  };

  it('parses manifests and indexes, keeping unknown fields', () => {
    const p = parseManifest(JSON.stringify({ ...man, extra: 1 }), undefined, 't');
    expect(p.kind).toBe('manifest');
    if (p.kind === 'manifest') {
      expect(p.manifest.layers[0]!.annotations).toEqual({ k: 'v' });
      expect(p.manifest.extra).toBe(1);
    }
    const idx = parseManifest(
      JSON.stringify({ schemaVersion: 2, manifests: [{ ...layer, mediaType: MediaType.ociManifest }] }),
      undefined,
      't',
    );
    expect(idx.kind).toBe('index');
    expect(isIndexType(idx.mediaType)).toBe(true);
  });

  it('uses Content-Type when mediaType is absent, and rejects a mismatch', () => {
    const { mediaType: _m, ...bare } = man;
    expect(parseManifest(JSON.stringify(bare), `${MediaType.dockerManifest}; charset=utf-8`, 't').mediaType).toBe(
      MediaType.dockerManifest,
    );
    expect(() => parseManifest(JSON.stringify(man), MediaType.dockerManifest, 't')).toThrow(/does not match/);
  });

  it('rejects bad shapes with the source named', () => {
    expect(() => parseManifest('{', undefined, 'ref1')).toThrow(/ref1: not valid JSON/);
    expect(() =>
      parseManifest(JSON.stringify({ ...man, layers: [{ ...layer, size: -1 }] }), undefined, 'ref2'),
    ).toThrow(/ref2: layers\[0\]/);
    expect(() => parseManifest(JSON.stringify({ ...man, schemaVersion: 1 }), undefined, 'r')).toThrow(/schemaVersion/);
    expect(() => parseImageConfig('{"rootfs":{"diff_ids":["x"]}}', 'cfg')).toThrow(/cfg/);
  });
});

describe('platform', () => {
  it('knows this machine', () => {
    const p = hostPlatform();
    expect(p.os).toBe(process.platform === 'win32' ? 'windows' : process.platform);
    if (process.arch === 'x64') expect(p.architecture).toBe('amd64');
    expect(formatPlatform(parsePlatform('linux/arm64/v8'))).toBe('linux/arm64/v8');
    expect(() => parsePlatform('linux')).toThrow(/os\/arch/);
  });

  it('scores variants', () => {
    expect(
      platformScore({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    ).toBe(100);
    expect(
      platformScore(
        { os: 'linux', architecture: 'arm', variant: 'v7' },
        { os: 'linux', architecture: 'arm', variant: 'v6' },
      ),
    ).toBeGreaterThan(0);
    expect(
      platformScore(
        { os: 'linux', architecture: 'arm', variant: 'v6' },
        { os: 'linux', architecture: 'arm', variant: 'v7' },
      ),
    ).toBe(-1);
    expect(platformScore({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' })).toBe(-1);
  });

  it('selects from an index, skipping attestations, falling back to a nested index', () => {
    const m = (arch: string, digestChar: string, extra: Record<string, unknown> = {}) => ({
      mediaType: MediaType.ociManifest,
      digest: D(digestChar),
      size: 1,
      platform: { os: 'linux', architecture: arch },
      ...extra,
    });
    const index = {
      schemaVersion: 2 as const,
      manifests: [
        m('unknown', '1', { platform: { os: 'unknown', architecture: 'unknown' } }),
        m('arm64', '2'),
        m('amd64', '3'),
        m('amd64', '4', { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }),
      ],
    };
    expect(selectPlatform(index, { os: 'linux', architecture: 'amd64' })?.digest).toBe(D('3'));
    expect(selectPlatform(index, { os: 'linux', architecture: 's390x' })).toBeUndefined();
    const nested = {
      schemaVersion: 2 as const,
      manifests: [m('386', '5'), { mediaType: MediaType.dockerManifestList, digest: D('6'), size: 1 }],
    };
    expect(selectPlatform(nested, { os: 'linux', architecture: 'amd64' })?.digest).toBe(D('6'));
  });
});
