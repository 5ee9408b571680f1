import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryFile } from './memory.js';

describe('MemoryFile', () => {
  it('truncate drops the bytes past the new size: they read as zeros when the file grows again', async () => {
    const f = new MemoryFile(0, 'index');
    await f.write(new Uint8Array(100).fill(7), 0);
    await f.truncate(40);
    expect(f.size).toBe(40);
    await f.truncate(300); // past what it ever held
    expect(f.size).toBe(300);
    const back = new Uint8Array(300);
    expect(await f.read(back, 0)).toBe(300);
    expect(back.subarray(0, 40).every((b) => b === 7)).toBe(true);
    expect(back.subarray(40).every((b) => b === 0)).toBe(true);
  });

  it('reads as a plain byte array would after any writes and truncates (seeded)', async () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('write' as const),
        at: fc.nat(600),
        len: fc.integer({ min: 1, max: 200 }),
        byte: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(900) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 20 }), async (ops) => {
        const f = new MemoryFile(0);
        const model = new Uint8Array(1000);
        let size = 0;
        for (const o of ops) {
          if (o.kind === 'write') {
            await f.write(new Uint8Array(o.len).fill(o.byte), o.at);
            model.fill(o.byte, o.at, o.at + o.len);
            size = Math.max(size, o.at + o.len);
          } else {
            await f.truncate(o.at);
            model.fill(0, o.at);
            size = o.at;
          }
        }
        expect(f.size).toBe(size);
        expect(Buffer.from(f.bytes()).equals(Buffer.from(model.subarray(0, size)))).toBe(true);
      }),
      { seed: 16, numRuns: 100 },
    );
  });
});
