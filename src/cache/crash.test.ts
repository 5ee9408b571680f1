// kill -9 a process filling the cache, many times, at random moments; then check that every
// page the map files record holds the right bytes, and that reading everything is correct.

import { spawn } from 'node:child_process';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRandom } from '../../test/seed.js';
import { MemoryFile } from '../blockfile/memory.js';
import { isSet } from './bitmap.js';
import { BlockCache } from './cache.js';
import { decodeMapHeader, MAP_HEADER_SIZE, PAGE, pageCount } from './layout.js';
import { CountingSource, patternBytes, sleep } from './testing.js';

const here = dirname(fileURLToPath(import.meta.url));
const MiB = 1 << 20;
const ROUNDS = 6;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-cache-crash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runChild(cacheDir: string, a: string, b: string, seed: number, killAfterMs: number) {
  return new Promise<{ code: number | null; signal: string | null; stderr: string; killed: boolean }>(
    (resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(here, 'crash-child.ts'), cacheDir, a, b, String(seed)],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      let killed = false;
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready') && !killed) {
          setTimeout(() => {
            killed = true;
            child.kill('SIGKILL');
          }, killAfterMs);
        }
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve({ code, signal, stderr, killed }));
    },
  );
}

/** Every page a map file records must hold the source's bytes in the data file. */
async function checkRecordedPages(cacheDir: string, truth: Map<string, Buffer>): Promise<number> {
  let pages = 0;
  for (const name of await readdir(cacheDir)) {
    if (!name.endsWith('.map')) continue;
    const key = name.slice(0, -4);
    const data = truth.get(key)!;
    const mfh = await open(join(cacheDir, name), 'r');
    const map = Buffer.alloc(MAP_HEADER_SIZE + Math.ceil(pageCount(data.length) / 8));
    await mfh.read(map, 0, map.length, 0);
    await mfh.close();
    const h = decodeMapHeader(map);
    if (!h) continue; // an invalid map is reset at open
    const dfh = await open(join(cacheDir, `${key}.data`), 'r');
    const page = Buffer.alloc(PAGE);
    const bm = map.subarray(MAP_HEADER_SIZE);
    for (let p = 0; p < pageCount(data.length); p++) {
      if (!isSet(bm, p)) continue;
      const n = Math.min(PAGE, data.length - p * PAGE);
      await dfh.read(page, 0, n, p * PAGE);
      expect(page.subarray(0, n).equals(data.subarray(p * PAGE, p * PAGE + n)), `${key} page ${p}`).toBe(true);
      pages++;
    }
    await dfh.close();
  }
  return pages;
}

describe('crash safety', () => {
  it(`survives kill -9 during fill, ${ROUNDS} times: every recorded page and every read is correct`, async () => {
    const truthA = patternBytes(6 * MiB + 1234, 61);
    const truthB = patternBytes(5 * MiB + 77, 62);
    const a = join(dir, 'a.bin');
    const b = join(dir, 'b.bin');
    await writeFile(a, truthA);
    await writeFile(b, truthB);
    const cacheDir = join(dir, 'cache');
    const keyA = `sha256:${'1'.padStart(64, '0')}`;
    const keyB = `sha256:${'2'.padStart(64, '0')}`;
    const truth = new Map([
      [keyA, truthA],
      [keyB, truthB],
    ]);
    const random = testRandom();
    let recorded = 0;
    let lastRound = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const r = await runChild(cacheDir, a, b, round + 1, 100 + Math.floor(random() * 500));
      expect(r.stderr).not.toContain('WRONG BYTES');
      expect(r.signal, r.stderr).toBe('SIGKILL');
      // Pages checked over all rounds: a single round may legitimately end with nothing recorded
      // (killed early on a starved machine, or right after evicting a whole blob).
      lastRound = await checkRecordedPages(cacheDir, truth);
      recorded += lastRound;
    }
    expect(recorded).toBeGreaterThan(0);

    const cache = await BlockCache.open(cacheDir, { diskFloor: 0, refillSize: 64 * 1024 });
    for (const [key, data] of truth) {
      const src = new CountingSource(new MemoryFile(data));
      const blob = cache.open(key, src);
      // Random order, random sizes.
      const order = Array.from({ length: Math.ceil(data.length / 100_000) }, (_, i) => i).sort(() => random() - 0.5);
      for (const i of order) {
        const off = i * 100_000;
        const buf = Buffer.alloc(100_000);
        const n = await blob.read(buf, off);
        expect(buf.subarray(0, n).equals(data.subarray(off, off + n))).toBe(true);
      }
      await blob.close();
    }
    const s = cache.stats();
    expect(s.readBytes).toBe(truthA.length + truthB.length);
    // The cache survived the kills: what the last round left recorded is served from it. (The last
    // round alone may have left nothing on a loaded machine; the sum over rounds is checked above.)
    if (lastRound > 0) expect(s.hitBytes).toBeGreaterThan(0);
    await cache.close();
    await sleep(0);
  });
});
