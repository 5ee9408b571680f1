// Writable layers: the files of one (data + index), and the writable device of a running image
// (a writable layer over the merged stack: writes go to the top, reads fall through). The one
// place WritableLayer and ComboDevice are constructed outside their own modules.

import { access, unlink } from 'node:fs/promises';
import { LocalFile } from '../blockfile/local.js';
import { MemoryFile } from '../blockfile/memory.js';
import { ScratchFile } from '../blockfile/scratch.js';
import {
  ComboDevice,
  type CreateWritableOptions,
  type LayerStack,
  NULL_UUID,
  type OpenWritableOptions,
  WritableLayer,
} from '../format/lsmt/index.js';
import { CompressAheadFile, type CompressAheadOptions } from '../format/zfile/index.js';

/** Where a writable layer lives. */
export interface WritableFiles {
  data: string;
  index: string;
}

/**
 * A new writable layer in `files`; with `scratch`, a throwaway one (a conversion's): its files are
 * removed on close and, with `scratch.compressAhead`, its data is compressed as ZFile blocks of
 * those settings while it is written, for the commit to copy (format/zfile/compress-ahead.ts).
 */
export function createWritableLayer(
  files: WritableFiles,
  opts: CreateWritableOptions & { scratch?: { compressAhead?: Omit<CompressAheadOptions, 'spillPath'> } },
): Promise<WritableLayer> {
  const { scratch, ...create } = opts;
  if (!scratch) return WritableLayer.create(files.data, files.index, create);
  const data = new ScratchFile(files.data);
  return WritableLayer.createIn(
    scratch.compressAhead
      ? new CompressAheadFile(data, { ...scratch.compressAhead, spillPath: `${files.data}.zfile` })
      : data,
    // The index file of a throwaway layer is never read (the commit takes the in-memory index):
    // in memory, its 16-byte records cost no hand-off to the thread pool each.
    new MemoryFile(0, files.index),
    create,
  );
}

export function openWritableLayer(files: WritableFiles, opts: OpenWritableOptions = {}): Promise<WritableLayer> {
  return WritableLayer.open(files.data, files.index, opts);
}

/**
 * A writable device over `lower`: a new writable layer (sized like the stack, its parent the top
 * layer), or with `reuse` the one already in `files` when it exists (a container's layer).
 */
export async function openWritableDevice(
  lower: LayerStack,
  files: WritableFiles,
  opts: { reuse?: boolean } = {},
): Promise<ComboDevice> {
  const top = lower.layers[lower.layers.length - 1]!;
  const upper =
    opts.reuse && (await exists(files.data))
      ? await openWritableLayer(files)
      : await createWritableLayer(files, {
          virtualSize: lower.size,
          parentUuid: top.uuid !== NULL_UUID ? top.uuid : undefined,
        });
  return stackWritable(upper, lower);
}

/**
 * A writable device whose files are made (or, with `reuse`, opened) now, before the stack below is
 * open: a mount opens its layers meanwhile, and creating two files took 60-120 ms of a cold start
 * once it came after them (the ext4 prefetch and the cache's writes then share the daemon's thread
 * and disk). `open(lower)` then only writes the new layer's headers (sized like `lower`, its parent
 * the top layer) and stacks it; it owns the files from then on, also when it fails. Until then,
 * `discard()` gives the files back: a new layer's are removed, an existing one is closed.
 */
export interface PreparedWritableDevice {
  open(lower: LayerStack): Promise<ComboDevice>;
  discard(): Promise<void>;
}

export function prepareWritableDevice(files: WritableFiles, opts: { reuse?: boolean } = {}): PreparedWritableDevice {
  type Ready = { existing: WritableLayer } | { data: LocalFile; index: LocalFile };
  const ready: Promise<Ready> = (async () => {
    if (opts.reuse && (await exists(files.data))) return { existing: await openWritableLayer(files) };
    return createLayerFiles(files);
  })();
  ready.catch(() => {}); // the caller's open() or discard() reports it
  let claimed = false;
  const remove = (r: Ready): Promise<void> => ('existing' in r ? r.existing.close() : removeLayerFiles(files, r));
  return {
    async open(lower) {
      claimed = true;
      const r = await ready;
      try {
        if ('existing' in r) return await stackWritable(r.existing, lower);
        const top = lower.layers[lower.layers.length - 1]!;
        const upper = await WritableLayer.createIn(r.data, r.index, {
          virtualSize: lower.size,
          parentUuid: top.uuid !== NULL_UUID ? top.uuid : undefined,
        });
        return await stackWritable(upper, lower);
      } catch (e) {
        await remove(r).catch(() => {});
        throw e;
      }
    },
    async discard() {
      if (claimed) return;
      claimed = true;
      const r = await ready.catch(() => undefined);
      if (r) await remove(r);
    },
  };
}

/** Both files of a new layer, created exclusively (none left behind when the second fails). */
async function createLayerFiles(files: WritableFiles): Promise<{ data: LocalFile; index: LocalFile }> {
  const [data, index] = await Promise.allSettled([LocalFile.create(files.data), LocalFile.create(files.index)]);
  if (data.status === 'fulfilled' && index.status === 'fulfilled') return { data: data.value, index: index.value };
  if (data.status === 'fulfilled') await removeLayerFiles(files, { data: data.value });
  if (index.status === 'fulfilled') await removeLayerFiles(files, { index: index.value });
  throw data.status === 'rejected' ? data.reason : (index as PromiseRejectedResult).reason;
}

async function removeLayerFiles(files: WritableFiles, open: { data?: LocalFile; index?: LocalFile }): Promise<void> {
  for (const k of ['data', 'index'] as const) {
    const f = open[k];
    if (!f) continue;
    await f.close().catch(() => {});
    await unlink(files[k]).catch(() => {});
  }
}

/** `upper` over `lower` as one device (a layer being written on top of a stack, as convert does). */
export function stackWritable(upper: WritableLayer, lower: LayerStack): Promise<ComboDevice> {
  return ComboDevice.open(upper, lower);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
