// The one-pass jump table parse against the per-entry parse it replaced (readUInt32LE per block),
// on seeded random tables: valid ones, ones with a bad length anywhere, and unaligned table bytes.

import { describe, expect, it } from 'vitest';
import { testRandom } from '../../../test/seed.js';
import { DadiError } from '../../errors.js';
import { blockOffsets, jumpTableBuffer } from './jump-table.js';

/** The parse reader.ts did before jump-table.ts, kept as the reference. */
function previousParse(name: string, table: Buffer, n: number, dataStart: number, minLen: number, maxLen: number) {
  const offsets = new Float64Array(n + 1);
  let pos = dataStart;
  let maxStored = 0;
  offsets[0] = pos;
  for (let k = 0; k < n; k++) {
    const len = table.readUInt32LE(4 * k);
    if (len <= minLen || len > maxLen) {
      throw new DadiError('EFORMAT', `${name}: ZFile block ${k} has a bad stored length ${len}`);
    }
    if (len > maxStored) maxStored = len;
    pos += len;
    offsets[k + 1] = pos;
  }
  return { offsets, maxStored };
}

function outcome(f: () => { offsets: Float64Array; maxStored: number }) {
  try {
    const r = f();
    return { offsets: Array.from(r.offsets), maxStored: r.maxStored };
  } catch (e) {
    expect(e).toBeInstanceOf(DadiError);
    return { error: (e as DadiError).code, message: (e as Error).message };
  }
}

describe('ZFile jump table', () => {
  it('gives what the per-entry parse gave, on seeded random tables', () => {
    const rnd = testRandom(31);
    const int = (below: number) => Math.floor(rnd() * below);
    for (let run = 0; run < 400; run++) {
      const n = run < 5 ? run : 1 + int(run % 10 === 0 ? 70_000 : 600);
      const blockSize = 4096 << int(5);
      const minLen = int(2) === 0 ? 4 : 0;
      const maxLen = blockSize + 1024;
      const table = Buffer.alloc(4 * n);
      for (let k = 0; k < n; k++) table.writeUInt32LE(minLen + 1 + int(maxLen - minLen), 4 * k);
      // A third of the tables get one bad length: too short, too long, or a huge u32.
      if (n > 0 && run % 3 === 1) {
        const bad = [0, minLen, maxLen + 1, 0xffffffff, 2 ** 31][int(5)]!;
        table.writeUInt32LE(bad, 4 * int(n));
      }
      const dataStart = 512 + int(2) * int(1 << 20);
      // The new parse on its aligned buffer and on an unaligned copy (the DataView path).
      const aligned = jumpTableBuffer(n);
      aligned.set(table);
      const unaligned = new Uint8Array(4 * n + 1).subarray(1);
      unaligned.set(table);
      const want = outcome(() => previousParse('t', table, n, dataStart, minLen, maxLen));
      expect(outcome(() => blockOffsets('t', aligned, n, dataStart, minLen, maxLen))).toEqual(want);
      expect(outcome(() => blockOffsets('t', unaligned, n, dataStart, minLen, maxLen))).toEqual(want);
    }
  });

  it('refuses a table shorter than its entry count', () => {
    expect(() => blockOffsets('short.zfile', new Uint8Array(7), 2, 512, 4, 5120)).toThrow(
      /short\.zfile: ZFile jump table holds 7 bytes, not 8/,
    );
  });
});
