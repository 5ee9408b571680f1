import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { U1 } from '../../../test/fixtures.js';
import {
  applyOps,
  DiskModel,
  expectExtentsCover,
  expectReads,
  type Op,
  opArb,
  pattern,
  withTempDir,
} from '../../../test/lsmt-helpers.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { MemorySink } from '../../blockfile/sink.js';
import { ComboDevice } from './combo.js';
import { decodeHeader } from './header.js';
import { SealedLayer } from './sealed.js';
import { LayerStack } from './stack.js';
import { NULL_UUID } from './uuid.js';
import { WritableLayer } from './writable.js';

const VS = 1 << 20;
const UA = 'aaaaaaaa-0000-4000-8000-000000000001';
const UB = 'bbbbbbbb-0000-4000-8000-000000000002';

/** Commit a fresh RW layer after `ops` (applied to `model` too) and return the sealed bytes. */
async function committedLayer(
  dir: string,
  name: string,
  ops: Op[],
  model: DiskModel,
  ids: { uuid?: string; parentUuid?: string; vsize?: number } = {},
): Promise<MemoryFile> {
  const rw = await WritableLayer.create(join(dir, `${name}.data`), join(dir, `${name}.index`), {
    virtualSize: ids.vsize ?? VS,
    parentUuid: ids.parentUuid,
  });
  await applyOps(rw, model, ops);
  const sink = new MemorySink();
  await rw.commit(sink, { uuid: ids.uuid });
  await rw.close();
  return new MemoryFile(sink.bytes(), name);
}

describe('LayerStack and ComboDevice', () => {
  it('a writable layer over two committed layers reads, commits and flattens like the layered model', async () => {
    const ops = fc.array(opArb(VS), { minLength: 1, maxLength: 30 });
    await fc.assert(
      fc.asyncProperty(ops, ops, ops, async (ops0, ops1, ops2) =>
        withTempDir(async (dir) => {
          const model = new DiskModel(VS);
          const l0 = await committedLayer(dir, 'l0', ops0, model, { uuid: UA });
          const l1 = await committedLayer(dir, 'l1', ops1, model, { uuid: UB, parentUuid: UA });
          const lowerModel = new DiskModel(VS);
          lowerModel.bytes.set(model.bytes);

          const stack = await LayerStack.open([l0, l1], { checkChain: true });
          await expectReads(stack, lowerModel);
          await expectExtentsCover(stack, lowerModel);
          const flatSink = new MemorySink();
          const r = await stack.flatten(flatSink);
          expect(r.parentUuid).toBe(NULL_UUID); // bottom layer's parent
          await expectReads(await SealedLayer.open(new MemoryFile(flatSink.bytes())), lowerModel);

          const upper = await WritableLayer.create(join(dir, 'up.data'), join(dir, 'up.index'), {
            virtualSize: 0,
            parentUuid: UB,
          });
          const dev = await ComboDevice.open(upper, stack);
          expect(dev.size).toBe(VS); // took the lower's size
          await applyOps(dev, model, ops2);
          await expectReads(dev, model);
          await expectExtentsCover(dev, model);

          // Commit of the RW layer alone, stacked on the lowers again.
          const top = new MemorySink();
          await dev.commit(top);
          const restack = await LayerStack.open([l0, l1, new MemoryFile(top.bytes(), 'top')]);
          await expectReads(restack, model);

          // Flatten of everything.
          const flat = new MemorySink();
          await dev.flatten(flat);
          const h = decodeHeader(flat.bytes().subarray(0, 4096));
          expect(h.virtualSize).toBe(VS); // from the top lower layer's header
          expect(h.parentUuid).toBe(UB.toUpperCase()); // from the RW data file's header, as the reference
          await expectReads(await SealedLayer.open(new MemoryFile(flat.bytes())), model);
          await dev.close();
        }),
      ),
      { numRuns: 12 },
    );
  });

  it('a writable layer over a plain BlockFile fills gaps from it; flatten needs an LSMT lower', async () => {
    await withTempDir(async (dir) => {
      const base = pattern(VS / 2, 4);
      const model = new DiskModel(VS);
      model.write(base, 0);
      const upper = await WritableLayer.create(join(dir, 'u.data'), join(dir, 'u.index'), { virtualSize: VS });
      const dev = await ComboDevice.open(upper, new MemoryFile(Uint8Array.from(base), 'raw'));
      await applyOps(dev, model, [
        { kind: 'write', offset: 1024, length: 2048, seed: 8 },
        { kind: 'discard', offset: 8192, length: 4096 },
        { kind: 'write', offset: VS - 4096, length: 4096, seed: 9 },
      ]);
      await expectReads(dev, model);
      const ext = [];
      for await (const e of dev.extents(0, VS)) ext.push(e);
      expect(ext).toEqual([
        { offset: 0, length: 8192 },
        { offset: 12288, length: VS / 2 - 12288 },
        { offset: VS - 4096, length: 4096 },
      ]);
      await expect(dev.flatten(new MemorySink())).rejects.toMatchObject({ code: 'EUNSUPPORTED' });
      await dev.close();
      await dev.close();
    });
  });

  it('takes the virtual size of the top-most layer that has one', async () => {
    await withTempDir(async (dir) => {
      const m = new DiskModel(VS);
      const big = await committedLayer(dir, 'big', [{ kind: 'write', offset: 0, length: 512, seed: 1 }], m, {
        vsize: VS,
      });
      const none = await committedLayer(dir, 'none', [], m, { vsize: 0 });
      const small = await committedLayer(dir, 'small', [], m, { vsize: VS / 2 });
      expect((await LayerStack.open([big, none])).size).toBe(VS);
      expect((await LayerStack.open([big, small, none])).size).toBe(VS / 2);
    });
  });

  it('checks the parent chain when asked, and the layer count', async () => {
    await withTempDir(async (dir) => {
      const m = new DiskModel(VS);
      const a = await committedLayer(dir, 'a', [], m, { uuid: UA });
      const b = await committedLayer(dir, 'b', [], m, { uuid: UB, parentUuid: U1 });
      await expect(LayerStack.open([a, b], { checkChain: true })).rejects.toThrow(/parent uuid .* does not match/);
      expect((await LayerStack.open([a, b])).layers.length).toBe(2);
      await expect(LayerStack.open([])).rejects.toThrow(/no layers/);
      const many = Array.from({ length: 256 }, () => a);
      await expect(LayerStack.open(many)).rejects.toThrow(/at most 255/);
    });
  });

  it('dispatches reads by tag: upper data, upper zeroed masks, holes stay zero', async () => {
    await withTempDir(async (dir) => {
      const model = new DiskModel(VS);
      const bottom = await committedLayer(dir, 'b', [{ kind: 'write', offset: 0, length: 65536, seed: 5 }], model);
      const top = await committedLayer(
        dir,
        't',
        [
          { kind: 'write', offset: 4096, length: 4096, seed: 6 },
          { kind: 'discard', offset: 16384, length: 8192 },
        ],
        model,
      );
      const stack = await LayerStack.open([bottom, top]);
      expect(stack.index.toArray().map((s) => [s.offset, s.length, s.zeroed, s.tag])).toEqual([
        [0, 8, false, 1],
        [8, 8, false, 0],
        [16, 16, false, 1],
        [32, 16, true, 0],
        [48, 80, false, 1],
      ]);
      await expectReads(stack, model);
      const ext = [];
      for await (const e of stack.extents(0, VS)) ext.push(e);
      expect(ext).toEqual([
        { offset: 0, length: 16384 },
        { offset: 24576, length: 65536 - 24576 },
      ]);
      const buf = pattern(512, 1);
      expect(await stack.read(buf, VS - 100)).toBe(100);
    });
  });
});
