import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withTempDir } from '../../test/lsmt-helpers.js';
import { MemoryFile } from '../blockfile/memory.js';
import { MemorySink } from '../blockfile/sink.js';
import { LayerStack, WritableLayer } from '../format/lsmt/index.js';
import { openWritableLayer, prepareWritableDevice } from './writable.js';

const VS = 1 << 20;
const UA = 'AAAAAAAA-0000-4000-8000-000000000001';

/** A one-layer stack whose disk holds 0x11 in its first 4 KiB. */
let lowers = 0;
async function lowerStack(dir: string): Promise<LayerStack> {
  const n = lowers++;
  const rw = await WritableLayer.create(join(dir, `l${n}.data`), join(dir, `l${n}.index`), { virtualSize: VS });
  await rw.write(Buffer.alloc(4096, 0x11), 0);
  const sink = new MemorySink();
  await rw.commit(sink, { uuid: UA });
  await rw.close();
  return LayerStack.open([new MemoryFile(sink.bytes(), 'l0')]);
}

const present = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe('prepareWritableDevice', () => {
  it('makes the files before the stack is open; open() writes headers sized like the stack, parented on its top', async () => {
    await withTempDir(async (dir) => {
      const files = { data: join(dir, 'rw.data'), index: join(dir, 'rw.index') };
      const prepared = prepareWritableDevice(files, { reuse: true });
      const stack = await lowerStack(dir);
      const combo = await prepared.open(stack);
      expect(combo.size).toBe(VS);
      const got = Buffer.alloc(8192);
      await combo.read(got, 0);
      expect(got.subarray(0, 4096).every((b) => b === 0x11)).toBe(true);
      await combo.write(Buffer.alloc(4096, 0x22), 4096);
      await prepared.discard(); // the device owns the files now: nothing is removed
      await combo.close();
      const again = await openWritableLayer(files);
      expect(again.size).toBe(VS);
      expect(again.parentUuid).toBe(UA);
      const back = Buffer.alloc(4096);
      await again.read(back, 4096);
      expect(back.every((b) => b === 0x22)).toBe(true);
      await again.close();
    });
  });

  it('reuses an existing layer with reuse, keeping what was written to it', async () => {
    await withTempDir(async (dir) => {
      const files = { data: join(dir, 'rw.data'), index: join(dir, 'rw.index') };
      const first = await prepareWritableDevice(files).open(await lowerStack(dir));
      await first.write(Buffer.alloc(4096, 0x33), 8192);
      await first.close();
      const combo = await prepareWritableDevice(files, { reuse: true }).open(await lowerStack(dir));
      const got = Buffer.alloc(4096);
      await combo.read(got, 8192);
      expect(got.every((b) => b === 0x33)).toBe(true);
      await combo.close();
    });
  });

  it('discard() before open removes a new layer’s files and keeps an existing one’s', async () => {
    await withTempDir(async (dir) => {
      const files = { data: join(dir, 'rw.data'), index: join(dir, 'rw.index') };
      await prepareWritableDevice(files).discard();
      expect(await present(files.data)).toBe(false);
      expect(await present(files.index)).toBe(false);

      const made = await prepareWritableDevice(files).open(await lowerStack(dir));
      await made.close();
      await prepareWritableDevice(files, { reuse: true }).discard();
      expect(await present(files.data)).toBe(true);
      const reopened = await openWritableLayer(files);
      expect(reopened.size).toBe(VS);
      await reopened.close();
    });
  });

  it('fails naming the file when it cannot create one, and leaves no half-made layer behind', async () => {
    await withTempDir(async (dir) => {
      const files = { data: join(dir, 'rw.data'), index: join(dir, 'rw.index') };
      await writeFile(files.index, 'someone else’s');
      const prepared = prepareWritableDevice(files);
      await expect(prepared.open(await lowerStack(dir))).rejects.toThrow(/rw\.index: cannot create/);
      expect(await present(files.data)).toBe(false);
      expect(await present(files.index)).toBe(true); // not ours: left alone
    });
  });

  it('an existing layer that does not open fails open() with its error', async () => {
    await withTempDir(async (dir) => {
      const files = { data: join(dir, 'rw.data'), index: join(dir, 'rw.index') };
      await writeFile(files.data, Buffer.alloc(8192));
      await writeFile(files.index, Buffer.alloc(8192));
      const prepared = prepareWritableDevice(files, { reuse: true });
      await expect(prepared.open(await lowerStack(dir))).rejects.toThrow(/rw\.data/);
      await prepared.discard();
    });
  });
});
