// Writable layers: the files of one (data + index), and the writable device of a running image
// (a writable layer over the merged stack: writes go to the top, reads fall through). The one
// place WritableLayer and ComboDevice are constructed outside their own modules.

import { access } from 'node:fs/promises';
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
