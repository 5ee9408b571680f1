import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScratchFile } from '../../blockfile/scratch.js';
import { FileSink } from '../../blockfile/sink.js';
import { DADI_LAYER_OUTPUT, wrapLayerOutput } from '../../image/layer-output.js';
import { WritableLayer } from '../lsmt/index.js';
import { compressBlock } from './blocks.js';
import { codecFor } from './codec.js';
import { CompressAheadFile } from './compress-ahead.js';
import { closeCompressPool, compressPool } from './compress-pool.js';
import type { ZFileWriter } from './writer.js';

const BS = 4096;
const SETTINGS = DADI_LAYER_OUTPUT.zfile;
const VSIZE = 64 << 20;

/** Deterministic bytes that compress some but not to nothing. */
function content(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (x >>> 24) & 0x0f; // 16 symbols: compressible, never constant
  }
  return out;
}

function stored(raw: Uint8Array): Uint8Array {
  const codec = codecFor(SETTINGS.algorithm);
  const dst = new Uint8Array(codec.bound(raw.length) + 4);
  return dst.subarray(0, compressBlock(codec, raw, dst, true));
}

const op = fc.oneof(
  // Mostly whole blocks, as ext4 writes; some sector-sized ones that leave blocks misaligned.
  fc.record({
    kind: fc.constant('write' as const),
    block: fc.nat(300),
    blocks: fc.integer({ min: 1, max: 400 }),
    sectors: fc.constantFrom(0, 0, 0, 1, 3),
    seed: fc.nat(),
  }),
  fc.record({ kind: fc.constant('discard' as const), block: fc.nat(300), blocks: fc.integer({ min: 1, max: 20 }) }),
  fc.constant({ kind: 'settle' as const }),
);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dadi-compress-ahead-'));
  await compressPool(2).whenReady();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await closeCompressPool();
});

describe('CompressAheadFile', () => {
  it('reads back what was written and answers only with the compression of what it holds now, after rewrites too', async () => {
    const f = new CompressAheadFile(new ScratchFile(join(dir, 'direct')), {
      ...SETTINGS,
      spillPath: join(dir, 'direct.z'),
    });
    try {
      const first = content(1, 8 * BS);
      await f.write(first, 0);
      await f.settle();
      expect(f.compressedBlocks).toBe(8);
      expect(f.heldRun(0, 100)).toBe(8);
      expect(await f.readStored(0, 8)).toEqual(
        Array.from({ length: 8 }, (_, b) => stored(first.subarray(b * BS, (b + 1) * BS))),
      );
      // Rewritten after being compressed: a whole block, part of one, and a discard.
      const again = content(2, BS);
      await f.write(again, 2 * BS);
      await f.write(new Uint8Array(512).fill(7), 4 * BS + 1024);
      await f.discard(6 * BS, BS);
      await f.settle();
      expect(await f.readStored(2 * BS, 1)).toEqual([stored(again)]);
      expect(f.heldRun(4 * BS, 1)).toBe(0);
      expect(f.heldRun(6 * BS, 1)).toBe(0);
      expect(f.heldRun(0, 100)).toBe(4); // blocks 0-3 (2 rewritten whole: compressed again)
      expect(await f.readStored(BS, 1)).toEqual([stored(first.subarray(BS, 2 * BS))]);
      expect(f.heldRun(BS + 512, 1)).toBe(0); // not a block boundary
      const back = new Uint8Array(8 * BS);
      await f.read(back, 0);
      const model = Uint8Array.from(first);
      model.set(again, 2 * BS);
      model.fill(7, 4 * BS + 1024, 4 * BS + 1536);
      model.fill(0, 6 * BS, 7 * BS);
      expect(Buffer.from(back).equals(Buffer.from(model))).toBe(true);
      await f.truncate(3 * BS);
      expect(await f.readStored(BS, 1)).toEqual([stored(first.subarray(BS, 2 * BS))]);
      expect(f.heldRun(3 * BS, 1)).toBe(0);
      expect(f.size).toBe(3 * BS);
    } finally {
      await f.close();
    }
  });

  it('commits a layer to the same blob as without it (seeded; rewritten and misaligned blocks)', async () => {
    let run = 0;
    let storedTotal = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        const n = run++;
        const ahead = new CompressAheadFile(new ScratchFile(join(dir, `a${n}.data`)), {
          ...SETTINGS,
          spillPath: join(dir, `a${n}.z`),
        });
        const layers = [
          await WritableLayer.createIn(
            new ScratchFile(join(dir, `p${n}.data`)),
            new ScratchFile(join(dir, `p${n}.index`)),
            {
              virtualSize: VSIZE,
              uuid: '11111111-2222-4333-8444-555555555555',
            },
          ),
          await WritableLayer.createIn(ahead, new ScratchFile(join(dir, `a${n}.index`)), {
            virtualSize: VSIZE,
            uuid: '11111111-2222-4333-8444-555555555555',
          }),
        ];
        try {
          for (const o of ops) {
            for (const rw of layers) {
              if (o.kind === 'write') {
                await rw.write(content(o.seed, o.blocks * BS + o.sectors * 512), o.block * BS + o.sectors * 512);
              } else if (o.kind === 'discard') await rw.discard(o.block * BS, o.blocks * BS);
              else await ahead.settle();
            }
          }
          // The data files read alike, blocks held compressed included.
          const files = layers.map((rw) => rw.dataFile);
          expect(files[1]!.size).toBe(files[0]!.size);
          const bytes = await Promise.all(
            files.map(async (f) => {
              const b = new Uint8Array(f.size + 100);
              expect(await f.read(b, 0)).toBe(f.size);
              return Buffer.from(b);
            }),
          );
          expect(bytes[1]!.equals(bytes[0]!)).toBe(true);
          const outs = [join(dir, `p${n}.commit`), join(dir, `a${n}.commit`)];
          const writers: ZFileWriter[] = [];
          for (const [i, rw] of layers.entries()) {
            const sink = wrapLayerOutput(await FileSink.create(outs[i]!), DADI_LAYER_OUTPUT, 0o100644);
            writers.push(sink as ZFileWriter);
            await rw.commit(sink, { uuid: rw.uuid });
          }
          expect(writers[0]!.stats.storedBlocks).toBe(0);
          storedTotal += writers[1]!.stats.storedBlocks;
          const [plain, fast] = await Promise.all(outs.map((p) => readFile(p)));
          expect(fast!.equals(plain!)).toBe(true);
        } finally {
          for (const rw of layers) await rw.close();
        }
      }),
      { numRuns: 40, seed: 16 },
    );
    expect(storedTotal).toBeGreaterThan(1000); // the stored path really ran
  });
});
