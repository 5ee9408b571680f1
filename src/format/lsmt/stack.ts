// A stack of sealed layers as one read-only virtual disk (spec §2.9): the merged index dispatches
// each mapping to the layer it came from (tag k = k-th layer from the top). Not writable: see
// combo.ts for a writable layer over a stack.

import type { BlockFile, ExtentSource, PrefetchableBlockFile } from '../../blockfile/blockfile.js';
import { checkRead } from '../../blockfile/range.js';
import type { Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import { type CommitOptions, type CommitResult, commitLayer } from './commit.js';
import { MAX_STACK_LAYERS } from './constants.js';
import { mergeIndexes } from './merge.js';
import { indexedExtents, prefetchIndexed, readIndexed } from './read.js';
import { SealedLayer } from './sealed.js';
import type { SegmentIndex } from './segment-index.js';
import { isNullUuid } from './uuid.js';

export interface StackOptions {
  /** Require each layer's uuid to equal the parent uuid of the layer above it, when that is set. */
  checkChain?: boolean;
}

export class LayerStack implements PrefetchableBlockFile, ExtentSource {
  private closed = false;
  /** Raw LSMT byte streams, top first (index = tag). */
  readonly files: readonly BlockFile[];
  readonly size: number;

  private constructor(
    /** The layers, bottom first (as given). */
    readonly layers: readonly SealedLayer[],
    /** The merged index (tags = position from the top). */
    readonly index: SegmentIndex,
  ) {
    const top = [...layers].reverse();
    this.files = top.map((l) => l.file);
    // Virtual size: the top-most layer whose virtual size is > 0.
    this.size = top.find((l) => l.virtualSize > 0)?.virtualSize ?? 0;
  }

  /**
   * Open raw sealed-LSMT byte streams, bottom layer first (at most 255), validating each.
   * On failure the already-opened layers are not closed (the caller owns `files`).
   */
  static async open(files: readonly BlockFile[], opts: StackOptions = {}): Promise<LayerStack> {
    checkCount(files.length);
    const layers = await Promise.all(files.map((f) => SealedLayer.open(f)));
    return LayerStack.fromLayers(layers, opts);
  }

  /** Stack already-open layers, bottom first. */
  static fromLayers(layers: readonly SealedLayer[], opts: StackOptions = {}): LayerStack {
    checkCount(layers.length);
    if (opts.checkChain) checkChain(layers);
    const index = mergeIndexes([...layers].reverse().map((l) => l.index));
    return new LayerStack(layers, index);
  }

  get name(): string {
    const top = this.layers[this.layers.length - 1];
    return `stack of ${this.layers.length} layers (top ${top?.name ?? 'none'})`;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    return readIndexed(this, buf, offset);
  }

  /** Bring [offset, offset + length) into the layers' caches without decoding it (see PrefetchableBlockFile). */
  async prefetch(offset: number, length: number): Promise<void> {
    checkRead(this.name, offset, this.closed);
    return prefetchIndexed(this, offset, length);
  }

  /** Non-zeroed mapped byte ranges; holes and zeroed (discarded) ranges are left out. */
  extents(offset: number, length: number): AsyncIterable<{ offset: number; length: number }> {
    return indexedExtents(this, offset, length);
  }

  /**
   * Flatten the stack into one committed layer (`overlaybd-merge`, spec §2.11): virtual size from
   * the top layer's header, parent uuid from the bottom layer's header unless overridden.
   */
  flatten(sink: Sink, opts: CommitOptions = {}): Promise<CommitResult> {
    return commitLayer(this.index, this.files, sink, opts);
  }

  /** Close every layer (and so its file). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.layers.map((l) => l.close()));
  }
}

function checkCount(n: number): void {
  if (n === 0) throw new DadiError('EINVAL', 'lsmt stack: no layers');
  if (n > MAX_STACK_LAYERS) throw new DadiError('EINVAL', `lsmt stack: ${n} layers (at most ${MAX_STACK_LAYERS})`);
}

/** Parent/uuid chain check (top to bottom), as the reference's verify_order. */
function checkChain(layersBottomFirst: readonly SealedLayer[]): void {
  for (let i = layersBottomFirst.length - 1; i > 0; i--) {
    const upper = layersBottomFirst[i]!;
    const lower = layersBottomFirst[i - 1]!;
    const parent = upper.header.parentUuid;
    if (!isNullUuid(parent) && parent.toUpperCase() !== lower.uuid) {
      throw new DadiError(
        'EFORMAT',
        `${upper.name}: parent uuid ${parent} does not match the uuid ${lower.uuid} of the layer below (${lower.name})`,
      );
    }
  }
}
