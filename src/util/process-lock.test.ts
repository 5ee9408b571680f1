import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ProcessLock } from './process-lock.js';

const key = (what: string) => `process-lock.test ${process.pid} ${what}`;

describe('ProcessLock notes', () => {
  it('tells others the note its holder left, and nothing once it is free', async () => {
    const k = key('note');
    expect(await ProcessLock.holder(k)).toBeUndefined();
    const lock = await ProcessLock.tryAcquire(k, '{"pid":1,"role":"the dadi daemon"}');
    expect(lock).toBeDefined();
    expect(await ProcessLock.holder(k)).toBe('{"pid":1,"role":"the dadi daemon"}');
    expect(await ProcessLock.isHeld(k)).toBe(true);
    await lock!.release();
    expect(await ProcessLock.holder(k)).toBeUndefined();
  });

  it('a holder without a note reads as an empty note', async () => {
    const k = key('silent');
    const lock = await ProcessLock.tryAcquire(k);
    try {
      expect(await ProcessLock.holder(k)).toBe('');
    } finally {
      await lock!.release();
    }
  });
});

describe('ProcessLock', () => {
  it('excludes a second holder until released; release twice is harmless', async () => {
    const k = key('basic');
    expect(await ProcessLock.isHeld(k)).toBe(false);
    const a = await ProcessLock.tryAcquire(k);
    expect(a).toBeDefined();
    expect(await ProcessLock.tryAcquire(k)).toBeUndefined();
    expect(await ProcessLock.isHeld(k)).toBe(true);
    await a!.release();
    await a!.release();
    expect(await ProcessLock.isHeld(k)).toBe(false);
    const b = await ProcessLock.tryAcquire(k);
    expect(b).toBeDefined();
    await b!.release();
  });

  it('of many concurrent attempts exactly one wins', async () => {
    const k = key('race');
    const got = await Promise.all(Array.from({ length: 16 }, () => ProcessLock.tryAcquire(k)));
    const winners = got.filter((l) => l !== undefined);
    expect(winners).toHaveLength(1);
    await winners[0]!.release();
  });

  it('is free again as soon as a holder is killed (no stale lock)', async () => {
    const k = key('killed');
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const lockModule = pathToFileURL(new URL('./process-lock.ts', import.meta.url).pathname).href;
    const code = [
      `const { ProcessLock } = await import(${JSON.stringify(lockModule)});`,
      `const l = await ProcessLock.tryAcquire(${JSON.stringify(k)});`,
      `process.stdout.write(l ? 'held\\n' : 'busy\\n');`,
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const first = await new Promise<string>((resolve, reject) => {
        child.stdout.setEncoding('utf8').once('data', (d: string) => resolve(d.trim()));
        child.once('exit', (c) => reject(new Error(`lock holder exited early (${c})`)));
      });
      expect(first).toBe('held');
      expect(await ProcessLock.isHeld(k)).toBe(true);
      expect(await ProcessLock.tryAcquire(k)).toBeUndefined();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const mine = await ProcessLock.tryAcquire(k);
      expect(mine).toBeDefined();
      await mine!.release();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
