// openLayerStack taking over layers opened before it (the daemon's early opens): they are used as
// they are (not opened again), closed with the stack, and closed at once when the stack is refused.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withTempDir } from '../../test/lsmt-helpers.js';
import { MemorySink } from '../blockfile/sink.js';
import { WritableLayer } from '../format/lsmt/index.js';
import { type LayerBlobSource, type OpenedLayerBlob, openLayerBlob } from './layer-blob.js';
import { openLayerStack } from './layer-stack.js';

const VS = 1 << 20;

/** A sealed layer file whose disk holds `fill` in its first 4 KiB. */
async function layerFile(dir: string, name: string, fill: number): Promise<LayerBlobSource> {
  const rw = await WritableLayer.create(join(dir, `${name}.data`), join(dir, `${name}.index`), { virtualSize: VS });
  await rw.write(Buffer.alloc(4096, fill), 0);
  const sink = new MemorySink();
  await rw.commit(sink);
  await rw.close();
  const path = join(dir, `${name}.lsmt`);
  await writeFile(path, sink.bytes());
  return { kind: 'file', path };
}

/** Whether a layer's file is closed (a read of it then rejects). */
async function isClosed(b: OpenedLayerBlob): Promise<boolean> {
  return b.layer.read(Buffer.alloc(512), 0).then(
    () => false,
    () => true,
  );
}

describe('openLayerStack with layers already open', () => {
  it('uses them in their places, opens the rest, and closes them with the stack', async () => {
    await withTempDir(async (dir) => {
      const bottom = await layerFile(dir, 'bottom', 0x11);
      const top = await layerFile(dir, 'top', 0x22);
      const early = await openLayerBlob(top);
      const stack = await openLayerStack([bottom, top], undefined, { opened: [undefined, early] });
      expect(stack.blobs[1]).toBe(early);
      expect(stack.blobs[0]!.source).toEqual(bottom);
      const got = Buffer.alloc(4096);
      await stack.device.read(got, 0);
      expect(got.every((b) => b === 0x22)).toBe(true);
      expect(await isClosed(early)).toBe(false);
      await stack.close();
      expect(await isClosed(early)).toBe(true);
      expect(await isClosed(stack.blobs[0]!)).toBe(true);
    });
  });

  it('closes them when it refuses the stack, or when another layer fails to open', async () => {
    await withTempDir(async (dir) => {
      const one = await layerFile(dir, 'one', 0x33);
      const refused = await openLayerBlob(one);
      await expect(openLayerStack([], undefined, { opened: [refused] })).rejects.toThrow(/no layers/);
      expect(await isClosed(refused)).toBe(true);

      const taken = await openLayerBlob(one);
      const missing: LayerBlobSource = { kind: 'file', path: join(dir, 'missing.lsmt') };
      await expect(openLayerStack([one, missing], undefined, { opened: [taken] })).rejects.toThrow(/missing\.lsmt/);
      expect(await isClosed(taken)).toBe(true);
    });
  });
});
