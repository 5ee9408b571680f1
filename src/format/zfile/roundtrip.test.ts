// Property: whatever is streamed through ZFileWriter (any algorithm, block size, chunking, header
// mode, with or without the tar wrapper) reads back identically through ZFileReader.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rng } from '../../../test/mutate.js';
import type { BlockFile } from '../../blockfile/blockfile.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink, type Sink } from '../../blockfile/sink.js';
import { openTarPayload } from '../tar/detect.js';
import { TarWrapWriter } from '../tar/writer.js';
import { isZFile, ZFileReader } from './reader.js';
import { ZFileWriter } from './writer.js';

/** Data built from segments: zeros, short repeating patterns (compressible), random bytes. */
const segment = fc.oneof(
  fc.integer({ min: 1, max: 70_000 }).map((n) => new Uint8Array(n)),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 50_000 }))
    .map(([pat, n]) => Uint8Array.from({ length: n }, (_, i) => pat[i % pat.length]!)),
  fc.uint8Array({ minLength: 1, maxLength: 30_000 }),
);
const content = fc.array(segment, { maxLength: 6 }).map((parts) => Buffer.concat(parts));

describe('ZFile round trip', () => {
  it('reads back identical bytes at random ranges', async () => {
    await fc.assert(
      fc.asyncProperty(
        content,
        fc.constantFrom('lz4' as const, 'zstd' as const),
        fc.constantFrom(4096, 8192, 65536),
        fc.boolean(),
        fc.boolean(),
        // Chunk sizes ≥ 1, so the write loop below advances on every pass (≤ data.length passes).
        fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 150_000 })), { minLength: 1, maxLength: 8 }),
        async (data, algorithm, blockSize, overwriteHeader, tar, chunks, ranges) => {
          const mem = new MemorySink();
          const outer: Sink = tar ? new TarWrapWriter(mem) : mem;
          const w = new ZFileWriter(outer, { algorithm, blockSize, overwriteHeader });
          for (let p = 0, c = 0; p < data.length; c++) {
            const n = chunks[c % chunks.length]!;
            if (n < 1) throw new Error(`chunk size ${n} would not advance`);
            await w.write(data.subarray(p, p + n));
            p += n;
          }
          await w.end();
          expect(w.position).toBe(data.length);

          let file: BlockFile = new MemoryFile(mem.bytes());
          if (tar) file = await openTarPayload(file);
          expect(await isZFile(file)).toBe(true);
          const z = await ZFileReader.open(file);
          expect(z.size).toBe(data.length);
          expect(z.header.flags).toBe(overwriteHeader ? 0x1bn : 0x13n);
          const all = new Uint8Array(data.length);
          expect(await z.read(all, 0)).toBe(data.length);
          expect(Buffer.from(all).equals(data)).toBe(true);
          for (const [at, len] of ranges) {
            const off = data.length ? at % (data.length + 10) : 0;
            const buf = new Uint8Array(len);
            const n = await z.read(buf, off);
            expect(n).toBe(Math.max(0, Math.min(len, data.length - off)));
            expect(Buffer.from(buf.subarray(0, n)).equals(data.subarray(off, off + n))).toBe(true);
          }
          await z.verifyBlocks();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('handles an empty input', async () => {
    const mem = new MemorySink();
    const w = new ZFileWriter(mem, { overwriteHeader: true });
    await w.end();
    const z = await ZFileReader.open(new MemoryFile(mem.bytes()));
    expect([z.size, z.blockCount]).toEqual([0, 0]);
    expect(await z.read(new Uint8Array(10), 0)).toBe(0);
  });

  it('counts stored blocks the reference cannot read (> 64 KiB)', async () => {
    const rand = rng(3);
    const random = Uint8Array.from({ length: 3 * 65536 }, () => Math.floor(rand() * 256));
    const mem = new MemorySink();
    const w = new ZFileWriter(mem, { blockSize: 65536 });
    await w.write(random);
    await w.end();
    expect(w.stats.oversizedBlocks).toBeGreaterThan(0);
    const z = await ZFileReader.open(new MemoryFile(mem.bytes()));
    const out = new Uint8Array(random.length);
    await z.read(out, 0);
    expect(Buffer.from(out).equals(random)).toBe(true);
  });

  it('refuses bad block sizes', () => {
    for (const blockSize of [0, 2048, 5000, 131072]) {
      expect(() => new ZFileWriter(new MemorySink(), { blockSize })).toThrow(/block size/);
    }
  });
});
