import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { missing, requireOrSkip } from '../../test/require.js';
import { GOCODE } from './protos.js';
import { warmPullPath } from './warm-up.js';

const HAVE = requireOrSkip(
  'snapshotter warm-up',
  missing({
    files: [`${GOCODE}/github.com/containerd/containerd/api/services/content/v1/content.proto`],
    hint: 'apt-get install golang-github-containerd-containerd-dev',
  }),
);

describe.skipIf(!HAVE)('warmPullPath', () => {
  it('runs a whole pull against its stand-ins and leaves no folder behind', async () => {
    const leftovers = async () => (await readdir(tmpdir())).filter((n) => n.startsWith('dadi-warm-up-'));
    const before = await leftovers();
    const r = await warmPullPath();
    expect(r.name).toMatch(/^127\.0\.0\.1:\d+\/dadi-warm-up:latest$/);
    expect(r.layers).toBe(1);
    expect(r.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The manifest and the config, as a real pull counts them.
    expect(r.registryBytes).toBeGreaterThan(300);
    expect(await leftovers()).toEqual(before);
  });
});
