import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('creates its file on the first write and removes it on close', async () => {
    const spill = join(dir, 'data');
    const f = new ScratchFile(spill);
    expect(existsSync(spill)).toBe(false);
    await f.write(new Uint8Array(3 * PAGE).fill(2), PAGE);
    expect((await stat(spill)).size).toBe(4 * PAGE);
    expect(f.size).toBe(4 * PAGE);
    const back = new Uint8Array(4 * PAGE);
    expect(await f.read(back, 0)).toBe(4 * PAGE);
    expect(back.subarray(0, PAGE).every((b) => b === 0)).toBe(true);
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
        const f = new ScratchFile(join(dir, `spill-${run++}`));
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
});
