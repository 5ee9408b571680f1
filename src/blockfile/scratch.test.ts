import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScratchFile } from './scratch.js';

const PAGE = 4096;

describe('ScratchFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-scratch-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps what fits in memory, spills the rest to its file, and removes the file on close', async () => {
    const spill = join(dir, 'data');
    const f = new ScratchFile(spill, 2 * PAGE + 100, PAGE); // the limit rounds down to 2 pages
    await f.write(new Uint8Array(PAGE).fill(1), 0);
    expect(existsSync(spill)).toBe(false);
    expect(f.memoryBytes).toBe(PAGE);
    await f.write(new Uint8Array(3 * PAGE).fill(2), PAGE); // crosses the limit
    expect(f.memoryBytes).toBe(2 * PAGE);
    expect((await stat(spill)).size).toBe(2 * PAGE);
    expect(f.size).toBe(4 * PAGE);
    const back = new Uint8Array(4 * PAGE);
    expect(await f.read(back, 0)).toBe(4 * PAGE);
    expect(back.subarray(0, PAGE).every((b) => b === 1)).toBe(true);
    expect(back.subarray(PAGE).every((b) => b === 2)).toBe(true);
    await f.close();
    expect(existsSync(spill)).toBe(false);
  });

  it('reads as a plain byte array would after any writes, discards and truncates (seeded)', async () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('write' as const),
        at: fc.nat(6 * PAGE),
        len: fc.integer({ min: 1, max: 2 * PAGE }),
        byte: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ kind: fc.constant('discard' as const), at: fc.nat(6 * PAGE), len: fc.nat(2 * PAGE) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(6 * PAGE) }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 20 }), async (ops) => {
        // Every other run with pages made ahead on a worker thread.
        const f = new ScratchFile(join(dir, `spill-${run}`), 3 * PAGE, PAGE, run++ % 2 ? 2 : 0);
        const model = new Uint8Array(8 * PAGE);
        let size = 0;
        try {
          for (const o of ops) {
            if (o.kind === 'write') {
              await f.write(new Uint8Array(o.len).fill(o.byte), o.at);
              model.fill(o.byte, o.at, o.at + o.len);
              size = Math.max(size, o.at + o.len);
            } else if (o.kind === 'discard') {
              await f.discard(o.at, o.len);
              model.fill(0, o.at, Math.min(size, o.at + o.len));
            } else {
              await f.truncate(o.at);
              model.fill(0, o.at); // gone; reads as zeros if the file grows again
              size = o.at;
            }
          }
          expect(f.size).toBe(size);
          const got = new Uint8Array(size + 10);
          expect(await f.read(got, 0)).toBe(size);
          expect(Buffer.from(got.subarray(0, size)).equals(Buffer.from(model.subarray(0, size)))).toBe(true);
        } finally {
          await f.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('with pages made ahead on a worker: they are used, hold the same bytes, and a one-page file starts none', async () => {
    const small = new ScratchFile(join(dir, 'small'), 64 * PAGE, PAGE, 4);
    await small.write(new Uint8Array(100).fill(9), 0);
    await small.close();
    expect(small.prefaultedPages).toBe(0);

    const pages = 400;
    const f = new ScratchFile(join(dir, 'big'), pages * PAGE, PAGE, 4);
    const model = new Uint8Array(pages * PAGE);
    try {
      let seed = 7;
      let written = 0;
      // One page at a time, giving the worker time, until it has served a few (bounded: ~8 s).
      while (written < pages && (f.prefaultedPages < 3 || written < 8)) {
        const data = new Uint8Array(PAGE);
        for (let i = 0; i < data.length; i++) data[i] = seed = (seed * 1103515245 + 12345) >>> 24;
        await f.write(data, written * PAGE);
        model.set(data, written * PAGE);
        written++;
        await sleep(20);
      }
      expect(f.prefaultedPages).toBeGreaterThanOrEqual(3);
      const back = new Uint8Array(written * PAGE);
      expect(await f.read(back, 0)).toBe(back.length);
      expect(Buffer.from(back).equals(Buffer.from(model.subarray(0, back.length)))).toBe(true);
    } finally {
      await f.close();
    }
  });
});
