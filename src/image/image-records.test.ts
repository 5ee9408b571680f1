import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { ImageRecords, resolveWithRecord } from './image-records.js';
import type { ResolvedRunImage } from './resolve-image.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-records-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const image = (n: number) =>
  ({
    pinned: `r:5000/app@sha256:${String(n).repeat(64).slice(0, 64)}`,
    registry: 'r:5000',
    repository: 'app',
    layers: [{ digest: `sha256:${'a'.repeat(64)}`, size: n }],
  }) as unknown as ResolvedRunImage;

/** Wait for the background save (bounded). */
async function saved(records: ImageRecords, ref: string) {
  for (let i = 0; i < 200; i++) {
    const r = await records.load(ref, undefined);
    if (r) return r;
    await new Promise((res) => setTimeout(res, 5));
  }
  return undefined;
}

describe('resolveWithRecord', () => {
  it('saves each resolution and uses it, saying so, only when the registry cannot be reached', async () => {
    const records = new ImageRecords(dir);
    const logs: string[] = [];
    const log = (m: string) => logs.push(m);
    expect(await resolveWithRecord(records, 'r:5000/app:v1', undefined, async () => image(7), log)).toEqual(image(7));
    expect((await saved(records, 'r:5000/app:v1'))?.resolved).toEqual(image(7));

    const down = new DadiError('EIO', 'r:5000: connect ECONNREFUSED');
    const got = await resolveWithRecord(records, 'r:5000/app:v1', undefined, () => Promise.reject(down), log);
    expect(got).toEqual(image(7));
    expect(logs.at(-1)).toMatch(
      /^r:5000\/app:v1: registry unreachable \(r:5000: connect ECONNREFUSED\); using the resolution saved at /,
    );

    // A missing image or refused credentials are answers, not an outage; no record: the error stands.
    const gone = new DadiError('ENOTFOUND', 'r:5000/app:v1: manifest unknown');
    await expect(resolveWithRecord(records, 'r:5000/app:v1', undefined, () => Promise.reject(gone), log)).rejects.toBe(
      gone,
    );
    await expect(resolveWithRecord(records, 'r:5000/app:v2', undefined, () => Promise.reject(down), log)).rejects.toBe(
      down,
    );
    // Another platform is another record.
    expect(await records.load('r:5000/app:v1', 'linux/arm64')).toBeUndefined();
  });
});
