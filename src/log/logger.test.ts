import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootLogger } from './logger.js';
import { REDACTED } from './redact.js';

const lines = async (path: string) =>
  (await readFile(path, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('logger', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-log-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('writes JSON lines with level, time, pid, component; drops lines below the level; redacts', async () => {
    const path = join(dir, 'a.log');
    const log = RootLogger.create({ level: 'info', path }, 'daemon');
    log.debug('not written');
    log.info('mounted', { device: 'd-1', headers: { authorization: 'Bearer abcdefghijkl' } });
    log.child('snapshotter').warn('fetch https://u:pw123456@r.example/v2/ failed');
    log.close();
    const got = await lines(path);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({
      level: 'info',
      pid: process.pid,
      component: 'daemon',
      msg: 'mounted',
      device: 'd-1',
    });
    expect(got[0]!.headers).toEqual({ authorization: REDACTED });
    expect(Date.parse(String(got[0]!.time))).toBeGreaterThan(0);
    expect(got[1]).toMatchObject({ level: 'warn', component: 'daemon/snapshotter' });
    expect(got[1]!.msg).toBe(`fetch https://${REDACTED}@r.example/v2/ failed`);
  });

  it('reconfigure changes the level at once and reopens the file (after logrotate moved it)', async () => {
    const path = join(dir, 'b.log');
    const log = RootLogger.create({ level: 'warn', path }, 'daemon');
    log.info('before: dropped');
    expect(log.enabled('debug')).toBe(false);
    await rename(path, `${path}.1`).catch(() => {});
    log.reconfigure({ level: 'debug', path });
    expect(log.enabled('debug')).toBe(true);
    log.debug('after: written');
    log.reconfigure({ level: 'silent', path });
    log.error('silent: dropped');
    log.close();
    expect((await lines(path)).map((l) => l.msg)).toEqual(['after: written']);
  });
});
