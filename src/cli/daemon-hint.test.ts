// The CLI's early hint to the daemon: the image reference and state folder read from a `run` or
// `mount` command line as commander reads them, and the `preconnect` request it sends.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { statePaths } from '../runtime/state.js';
import { hintDaemon, imageRefOf } from './daemon-hint.js';
import { buildProgram } from './main.js';

describe('imageRefOf', () => {
  it('finds the reference past the options, and --state wherever it is', () => {
    expect(imageRefOf(['run', '--rm', '--timings', 'reg:5000/app:v1', '--', 'cat', '/x'])).toEqual({
      ref: 'reg:5000/app:v1',
    });
    expect(imageRefOf(['run', '--state', '/s', '--name', 'c1', '-u', '1:1', 'img', '--', 'sh'])).toEqual({
      ref: 'img',
      state: '/s',
    });
    expect(imageRefOf(['mount', 'img', '/mnt', '--state=/s2'])).toEqual({ ref: 'img', state: '/s2' });
    expect(imageRefOf(['run', '--trace-workers', '4', '-w', '/tmp', '--entrypoint', 'x', 'img'])).toEqual({
      ref: 'img',
    });
    // -e takes every value up to the next option, as commander's variadic option does.
    expect(imageRefOf(['run', '-e', 'A=1', 'B=2', '--rm', 'img', '--', 'env'])).toEqual({ ref: 'img' });
  });

  it('skips the value of every option `run` and `mount` define with one (their commander definitions)', async () => {
    for (const name of ['run', 'mount']) {
      const cmd = (await buildProgram([name])).commands.find((c) => c.name() === name)!;
      const valued = cmd.options.filter((o) => o.required || o.optional);
      expect(valued.length, name).toBeGreaterThan(0);
      for (const o of valued) {
        for (const flag of [o.short, o.long].filter((f): f is string => !!f)) {
          const values = o.variadic ? ['V1', 'V2'] : ['V1'];
          expect(imageRefOf([name, flag, ...values, '--rm', 'img', '/mnt'])?.ref, `${name} ${flag}`).toBe('img');
        }
      }
    }
  });

  it('nothing for other commands, help, or no reference before --', () => {
    expect(imageRefOf(['ps', 'img'])).toBeUndefined();
    expect(imageRefOf(['run', '--help'])).toBeUndefined();
    expect(imageRefOf(['run', '--rm', '--', 'img'])).toBeUndefined();
    expect(imageRefOf([])).toBeUndefined();
  });
});

describe('hintDaemon', () => {
  it("sends one preconnect request for the image to the state folder's socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-hint-'));
    const got: string[] = [];
    const server = createServer((s) => {
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        got.push(d);
        s.end('{"ok":true,"result":{}}\n');
      });
    });
    try {
      await new Promise<void>((r) => server.listen(statePaths(dir).socket, r));
      expect(hintDaemon(['run', '--state', dir, 'reg:5000/app:v1', '--', 'true'])).toBe(true);
      for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.map((l) => JSON.parse(l))).toEqual([{ op: 'preconnect', ref: 'reg:5000/app:v1' }]);
      // No daemon listening: nothing happens, nothing throws.
      expect(hintDaemon(['run', '--state', join(dir, 'none'), 'img'])).toBe(true);
      expect(hintDaemon(['ps'])).toBe(false);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
