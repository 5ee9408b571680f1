// Property: whatever a writable layer holds reads back identically directly, after commit, through
// every wrapping (ZFile lz4/zstd × 4/64 KiB blocks, tar), and as the top of a 3-layer stack —
// all checked against a plain-buffer model of the disk.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryFile } from '../blockfile/memory.js';
import { MemorySink } from '../blockfile/sink.js';
import { ComboDevice, LayerStack, type SealedLayer, WritableLayer } from '../format/lsmt/index.js';
import { type LayerOutputOptions, wrapLayerOutput } from './layer-output.js';
import { openLayer, unwrapBlob } from './open-layer.js';

const DISK = 4 << 20; // 4 MiB virtual disk: small enough to compare whole
const SECTOR = 512;

type Op =
  | { kind: 'write'; offset: number; length: number; seed: number }
  | { kind: 'discard'; offset: number; length: number };

const opArb: fc.Arbitrary<Op> = fc
  .record({
    kind: fc.constantFrom<'write' | 'discard'>('write', 'write', 'write', 'discard'),
    sector: fc.integer({ min: 0, max: DISK / SECTOR - 1 }),
    sectors: fc.integer({ min: 1, max: 600 }),
    seed: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ kind, sector, sectors, seed }) => {
    const offset = sector * SECTOR;
    const length = Math.min(sectors * SECTOR, DISK - offset);
    return kind === 'write' ? { kind, offset, length, seed } : { kind, offset, length };
  });

const wrapArb: fc.Arbitrary<LayerOutputOptions> = fc.record({
  tar: fc.boolean(),
  zfile: fc.option(
    fc.record({
      algorithm: fc.constantFrom<'lz4' | 'zstd'>('lz4', 'zstd'),
      blockSize: fc.constantFrom(4096, 65536),
      overwriteHeader: fc.boolean(),
    }),
    { nil: undefined },
  ),
});

/** Compressible-but-not-trivial content: runs of a seed byte mixed with pseudo-random bytes. */
function content(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (i >> 9) % 3 === 0 ? seed : x >>> 24;
  }
  return b;
}

async function applyOps(layer: WritableLayer | ComboDevice, model: Uint8Array, ops: Op[]): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'write') {
      const data = content(op.length, op.seed);
      await layer.write(data, op.offset);
      model.set(data, op.offset);
    } else {
      await layer.discard(op.offset, op.length);
      model.fill(0, op.offset, op.offset + op.length);
    }
  }
}

async function readAll(file: { read(b: Uint8Array, o: number): Promise<number> }): Promise<Buffer> {
  const out = Buffer.alloc(DISK);
  // Odd-sized, 512-aligned reads crossing segment boundaries.
  for (let off = 0; off < DISK; ) {
    const len = Math.min(DISK - off, SECTOR * (1 + ((off / SECTOR) % 37) * 13));
    const n = await file.read(out.subarray(off, off + len), off);
    expect(n).toBe(len);
    off += len;
  }
  return out;
}

describe('layer round trips through commit, ZFile, tar and a 3-layer stack', () => {
  let dir: string;
  let counter = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-rt-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const paths: string[][] = [];
  const newLayer = () => {
    const n = counter++;
    paths[n] = [join(dir, `${n}.data`), join(dir, `${n}.index`)];
    return WritableLayer.create(paths[n]![0]!, paths[n]![1]!, { virtualSize: DISK });
  };

  /** Commit `layer` through the wrapping `wrap` and open the resulting blob from memory. */
  async function commitWrapped(layer: WritableLayer, wrap: LayerOutputOptions): Promise<SealedLayer> {
    const mem = new MemorySink();
    await layer.commit(wrapLayerOutput(mem, wrap, 0o100644));
    const blob = new MemoryFile(mem.bytes(), 'blob');
    const { wrapping } = await unwrapBlob(blob);
    expect(wrapping).toEqual([...(wrap.tar ? ['tar'] : []), ...(wrap.zfile ? ['zfile'] : [])]);
    return openLayer(blob);
  }

  it('single layer: direct, reopened, committed and wrapped reads equal the model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), wrapArb, async (ops, wrap) => {
        const model = new Uint8Array(DISK);
        const layer = await newLayer();
        const [dataPath, indexPath] = paths[counter - 1]!;
        await applyOps(layer, model, ops);
        expect(Buffer.compare(await readAll(layer), model)).toBe(0);
        await layer.flush();
        const reopened = await WritableLayer.open(dataPath!, indexPath!, { readOnly: true });
        expect(Buffer.compare(await readAll(reopened), model)).toBe(0);
        const sealed = await commitWrapped(reopened, wrap);
        expect(Buffer.compare(await readAll(sealed), model)).toBe(0);
        await Promise.all([layer.close(), reopened.close(), sealed.close()]);
      }),
      { numRuns: 12 },
    );
  });

  it('3-layer stack: wrapped lower layers plus a writable top, before and after its commit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 12 }), { minLength: 3, maxLength: 3 }),
        fc.array(wrapArb, { minLength: 3, maxLength: 3 }),
        async (opsPerLayer, wraps) => {
          const model = new Uint8Array(DISK);
          const lowers: SealedLayer[] = [];
          for (let i = 0; i < 2; i++) {
            const w = await newLayer();
            await applyOps(w, model, opsPerLayer[i]!);
            lowers.push(await commitWrapped(w, wraps[i]!));
            await w.close();
          }
          const stack = LayerStack.fromLayers(lowers);
          const top = await newLayer();
          const device = await ComboDevice.open(top, stack);
          await applyOps(device, model, opsPerLayer[2]!);
          expect(Buffer.compare(await readAll(device), model)).toBe(0);

          const topSealed = await commitWrapped(top, wraps[2]!);
          const full = LayerStack.fromLayers([...lowers, topSealed]);
          expect(Buffer.compare(await readAll(full), model)).toBe(0);
          await Promise.all([device.close(), full.close()]);
        },
      ),
      { numRuns: 10 },
    );
  });
});
