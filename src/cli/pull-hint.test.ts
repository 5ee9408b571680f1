// The CLI's early hint to the snapshotter: the request a `pull` command line makes, read as
// commander and pull-remote.ts read it, and the PullAhead line it sends.

import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_FILE, DEFAULT_SNAPSHOTTER_ADDRESS } from '../config/file.js';
import { pullSocketOf } from '../snapshotter/pull-wire.js';
import { buildProgram } from './main.js';
import { hintSnapshotter, pullAheadOf } from './pull-hint.js';

const NO_CONFIG = { DADI_CONFIG: undefined };

describe('pullAheadOf', () => {
  it('reads the request pull-remote.ts sends, with its defaults', () => {
    expect(
      pullAheadOf(
        ['pull', '--containerd-address', '/c.sock', '--snapshotter-address', '/s.sock', '--json', 'reg:5000/app:v1'],
        NO_CONFIG,
      ),
    ).toEqual({
      address: '/s.sock',
      request: { ref: 'reg:5000/app:v1', containerdAddress: '/c.sock', namespace: 'default', snapshotter: 'dadi' },
    });
    expect(
      pullAheadOf(
        [
          'pull',
          `reg:5000/app@sha256:${'a'.repeat(64)}`,
          '-n',
          'k8s.io',
          '--snapshotter=overlaybd',
          '--containerd-address=/c.sock',
          '--hosts-dir',
          '/etc/containerd/certs.d',
          '--insecure',
          '--platform',
          'linux/arm64',
          '--timings',
          '--snapshotter-address',
          '/s.sock',
        ],
        NO_CONFIG,
      )?.request,
    ).toEqual({
      ref: `reg:5000/app@sha256:${'a'.repeat(64)}`,
      containerdAddress: '/c.sock',
      namespace: 'k8s.io',
      snapshotter: 'overlaybd',
      hostsDir: '/etc/containerd/certs.d',
      insecure: true,
      platform: 'linux/arm64',
    });
  });

  it('takes the default socket only where the config file can name none', async () => {
    const args = ['pull', '--containerd-address', '/c.sock', 'img:1'];
    const dir = await mkdtemp(join(tmpdir(), 'dadi-pull-hint-'));
    try {
      const missing = join(dir, 'missing.yaml');
      // $DADI_CONFIG names a file the loader must read (or fail on): no hint.
      expect(pullAheadOf(args, { DADI_CONFIG: missing })).toBeUndefined();
      const file = join(dir, 'config.yaml');
      for (const text of [
        'snapshotter:\n  address: /elsewhere.sock\n',
        'cacheConfig: {cacheDir: /c}\n"snapshotter": {"address": "/x.sock"}\n',
        '{cacheConfig: {cacheSizeGB: 4}, snapshotter: {address: /y.sock}}\n',
      ]) {
        await writeFile(file, text);
        expect(pullAheadOf(args, { DADI_CONFIG: file }), text).toBeUndefined();
        const given = pullAheadOf([...args, '--snapshotter-address', '/s.sock'], { DADI_CONFIG: file });
        expect(given?.address).toBe('/s.sock');
      }
      // A config file that does not set the snapshotter's socket leaves the default.
      await writeFile(file, 'cacheConfig:\n  cacheDir: /var/cache/dadi  # the snapshotter uses it too\n');
      expect(pullAheadOf(args, { DADI_CONFIG: file })?.address).toBe(DEFAULT_SNAPSHOTTER_ADDRESS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // No --config and no $DADI_CONFIG: the default file decides, when there is one.
    if (!existsSync(DEFAULT_CONFIG_FILE))
      expect(pullAheadOf(args, NO_CONFIG)?.address).toBe(DEFAULT_SNAPSHOTTER_ADDRESS);
  });

  it('nothing for help, --config, unknown options, a second argument, or no containerd address or reference', () => {
    const base = ['pull', '--containerd-address', '/c.sock', '--snapshotter-address', '/s.sock'];
    expect(pullAheadOf([...base, 'img'], NO_CONFIG)).toBeDefined();
    expect(pullAheadOf([...base, '--help', 'img'], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf([...base, '--config', '/x.yaml', 'img'], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf([...base, '--quiet', 'img'], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf([...base, 'img', 'other'], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf([...base], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf(['pull', '--snapshotter-address', '/s.sock', 'img'], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf([...base, 'img', '--platform'], NO_CONFIG)).toBeUndefined();
    expect(pullAheadOf(['run', 'img'], NO_CONFIG)).toBeUndefined();
  });

  it("knows every option pull's commander definition has", async () => {
    const cmd = (await buildProgram(['pull'])).commands.find((c) => c.name() === 'pull')!;
    const base = ['pull', '--containerd-address', '/c.sock', '--snapshotter-address', '/s.sock'];
    for (const o of cmd.options) {
      if (o.long === '--config') continue; // the config file's address is the loader's to read
      const flag = o.long!;
      const line = o.required || o.optional ? [...base, flag, 'V1', 'img'] : [...base, flag, 'img'];
      expect(pullAheadOf(line, NO_CONFIG)?.request.ref, flag).toBe('img');
    }
  });
});

describe('hintSnapshotter', () => {
  it("sends one PullAhead line to the snapshotter's pull socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-pull-hint-'));
    const address = join(dir, 'snap.sock');
    const got: string[] = [];
    const server = createServer((s) => {
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        got.push(d);
        s.end('{"ahead":true}\n');
      });
    });
    try {
      await new Promise<void>((r) => server.listen(pullSocketOf(address), r));
      const args = ['pull', '--containerd-address', '/c.sock', '--snapshotter-address', address, 'reg:5000/app:v1'];
      expect(hintSnapshotter(args)).toBe(true);
      for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.map((l) => JSON.parse(l))).toEqual([
        {
          ahead: {
            ref: 'reg:5000/app:v1',
            containerdAddress: '/c.sock',
            namespace: 'default',
            snapshotter: 'dadi',
          },
        },
      ]);
      // Nothing listening: nothing happens, nothing throws.
      expect(hintSnapshotter([...args.slice(0, 3), '--snapshotter-address', join(dir, 'none.sock'), 'img'])).toBe(true);
      expect(hintSnapshotter(['pull', '--help'])).toBe(false);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
