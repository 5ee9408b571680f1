import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { faultCode, installFaultPolicy } from './process-faults.js';

/** A process stand-in: an emitter with an exit code, and what exit() was called with. */
function fakeProcess() {
  const proc = Object.assign(new EventEmitter(), { exitCode: undefined as number | string | undefined });
  const exits: number[] = [];
  const logs: string[] = [];
  const counted: string[] = [];
  return { proc, exits, logs, counted };
}

describe('installFaultPolicy', () => {
  it('logs and counts a rejection, and keeps going', () => {
    const f = fakeProcess();
    let drained = 0;
    const off = installFaultPolicy({
      log: (m) => f.logs.push(m),
      count: (k, c) => f.counted.push(`${k} ${c}`),
      drain: async () => void drained++,
      drainDeadlineMs: 1000,
      proc: f.proc,
      exit: (c) => f.exits.push(c),
    });
    f.proc.emit('unhandledRejection', new DadiError('ENOTFOUND', 'gone'));
    f.proc.emit('unhandledRejection', 'a string');
    expect(f.counted).toEqual(['unhandled_rejection ENOTFOUND', 'unhandled_rejection string']);
    expect(f.logs[0]).toMatch(/^unhandled promise rejection \(logged and counted; still serving\): .*gone/);
    expect(drained).toBe(0);
    expect(f.exits).toEqual([]);
    expect(f.proc.exitCode).toBeUndefined();
    off();
    expect(f.proc.listenerCount('unhandledRejection')).toBe(0);
    expect(f.proc.listenerCount('uncaughtException')).toBe(0);
  });

  it('drains once after an uncaught exception, sets status 1, and exits at once on a second', async () => {
    const f = fakeProcess();
    let release!: () => void;
    let drains = 0;
    installFaultPolicy({
      log: (m) => f.logs.push(m),
      count: (k, c) => f.counted.push(`${k} ${c}`),
      drain: () => {
        drains++;
        return new Promise<void>((r) => (release = r));
      },
      drainDeadlineMs: 60_000,
      proc: f.proc,
      exit: (c) => f.exits.push(c),
    });
    f.proc.emit('uncaughtException', new TypeError('boom'));
    expect(drains).toBe(1);
    expect(f.proc.exitCode).toBe(1);
    expect(f.exits).toEqual([]);
    expect(f.logs[0]).toMatch(/^uncaught exception: draining, then exiting with status 1: TypeError: boom/);
    f.proc.emit('uncaughtException', new RangeError('again'));
    expect(f.exits).toEqual([1]);
    expect(drains).toBe(1);
    expect(f.counted).toEqual(['uncaught_exception TypeError', 'uncaught_exception RangeError']);
    release();
  });

  it('exits when the drain outlives its deadline', async () => {
    const f = fakeProcess();
    installFaultPolicy({
      log: (m) => f.logs.push(m),
      count: () => {},
      drain: () => new Promise<void>(() => {}),
      drainDeadlineMs: 20,
      proc: f.proc,
      exit: (c) => f.exits.push(c),
    });
    f.proc.emit('uncaughtException', new Error('stuck'));
    for (let i = 0; i < 100 && f.exits.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(f.exits).toEqual([1]);
    expect(f.logs.at(-1)).toMatch(/took over 20 ms: exiting now/);
  });

  it('names errors by DadiError code, else class', () => {
    expect(faultCode(new DadiError('EAUTH', 'x'))).toBe('EAUTH');
    expect(faultCode(new SyntaxError('x'))).toBe('SyntaxError');
    expect(faultCode(undefined)).toBe('undefined');
  });
});
