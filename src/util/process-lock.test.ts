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
