// Writable layers: the files of one (data + index), and the writable device of a running image
// (a writable layer over the merged stack: writes go to the top, reads fall through). The one
// place WritableLayer and ComboDevice are constructed outside their own modules.

import { access } from 'node:fs/promises';
import { ScratchFile } from '../blockfile/scratch.js';
import {
  ComboDevice,
  type CreateWritableOptions,
  type LayerStack,
  NULL_UUID,
  type OpenWritableOptions,
  WritableLayer,
} from '../format/lsmt/index.js';

/** Where a writable layer lives. */
export interface WritableFiles {
  data: string;
  index: string;
}

/**
 * Scratch data pages (8 MiB) made ahead of a conversion's apply: the apply can fill one in ~25 ms,
 * a worker faults one in in ~30 ms on an idle core, so it needs a head start.
 */
const SCRATCH_PAGES_AHEAD = 8;

/**
 * A new writable layer in `files`; with `scratchMemory`, a throwaway one (a conversion's) whose
 * first that many bytes of data stay in memory, the files holding only what does not fit.
 */
export function createWritableLayer(
  files: WritableFiles,
  opts: CreateWritableOptions & { scratchMemory?: number },
): Promise<WritableLayer> {
  const { scratchMemory, ...create } = opts;
  if (scratchMemory === undefined) return WritableLayer.create(files.data, files.index, create);
  // The index gets a page of its own: records are 24 bytes per write, a page holds ~350 000 of them.
  // The data's pages are faulted in ahead on a worker thread (blockfile/page-maker.ts).
  return WritableLayer.createIn(
    new ScratchFile(files.data, scratchMemory, undefined, SCRATCH_PAGES_AHEAD),
    new ScratchFile(files.index, 8 << 20),
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
