// A writable device: a WritableLayer over a lower read-only disk (spec §2.10). Reads walk the RW
// mappings and fill the gaps from the lower; writes and discards go to the RW layer. Commit
// compacts the RW layer alone; flatten compacts the whole stack. Not the live-snapshot machinery.

import { type BlockFile, type ExtentSource, hasExtents, type WritableBlockFile } from '../../blockfile/blockfile.js';
import { checkRead } from '../../blockfile/range.js';
import type { Sink } from '../../blockfile/sink.js';
import { DadiError } from '../../errors.js';
import type { CommitOptions, CommitResult } from './commit.js';
import { commitLayer } from './commit.js';
import { SECTOR } from './constants.js';
import { mergeIndexes } from './merge.js';
import { checkRange, readMapped } from './read.js';
import { SealedLayer } from './sealed.js';
import { LayerStack } from './stack.js';
import type { WritableLayer } from './writable.js';

const WINDOW_SECTORS = 2 ** 21;

export class ComboDevice implements WritableBlockFile, ExtentSource {
  private closed = false;

  private constructor(
    readonly upper: WritableLayer,
    readonly lower: BlockFile,
  ) {}

  /**
   * Put `upper` over `lower`. As the reference does, an upper with virtual size 0 takes the
   * lower's. The device owns both: close() closes them.
   *
   * @example const dev = await ComboDevice.open(await WritableLayer.open(d, i), await LayerStack.open(files));
   */
  static async open(upper: WritableLayer, lower: BlockFile): Promise<ComboDevice> {
    if (upper.size === 0 && lower.size > 0 && !upper.readOnly) await upper.updateVirtualSize(lower.size);
    return new ComboDevice(upper, lower);
  }

  get name(): string {
    return `${this.upper.name} over ${this.lower.name}`;
  }

  get size(): number {
    return this.upper.size;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    checkRange(this.name, offset, buf.length);
    const n = Math.max(0, Math.min(buf.length, this.size - offset));
    if (n === 0) return 0;
    const lower = this.lower;
    await readMapped(
      buf.subarray(0, n),
      offset,
      (b, e) => this.upper.index.overlapping(b, e),
      [this.upper.dataFile],
      async (dst, at) => {
        const got = at < lower.size ? await lower.read(dst, at) : 0;
        if (got < dst.length) dst.fill(0, got);
      },
    );
    return n;
  }

  write(buf: Uint8Array, offset: number): Promise<void> {
    return this.upper.write(buf, offset);
  }

  discard(offset: number, length: number): Promise<void> {
    return this.upper.discard(offset, length);
  }

  flush(): Promise<void> {
    return this.upper.flush();
  }

  /** RW data ranges, plus the lower's extents (or whole gaps, if it has none) where RW has no mapping. */
  async *extents(offset: number, length: number): AsyncGenerator<{ offset: number; length: number }> {
    const end = Math.min(offset + length, this.size);
    let pS = 0;
    let pE = -1;
    const pending: { offset: number; length: number }[] = [];
    const emit = (a: number, b: number) => {
      if (b <= a) return;
      if (a === pE) {
        pE = b;
        return;
      }
      if (pE > pS) pending.push({ offset: pS, length: pE - pS });
      pS = a;
      pE = b;
    };
    const lower = this.lower;
    const gap = async (a: number, b: number) => {
      b = Math.min(b, lower.size);
      if (b <= a) return;
      if (!hasExtents(lower)) return emit(a, b);
      for await (const x of lower.extents(a, b - a)) emit(x.offset, x.offset + x.length);
    };
    let cursor = offset;
    for (let wb = Math.floor(offset / SECTOR); wb * SECTOR < end; wb += WINDOW_SECTORS) {
      const we = Math.min(wb + WINDOW_SECTORS, Math.ceil(end / SECTOR));
      for (const s of this.upper.index.overlapping(wb, we)) {
        const a = Math.max(s.offset * SECTOR, offset);
        const b = Math.min((s.offset + s.length) * SECTOR, end);
        if (b <= a) continue;
        if (a > cursor) await gap(cursor, a);
        if (!s.zeroed) emit(a, b);
        cursor = b;
        yield* pending.splice(0);
      }
    }
    if (cursor < end) await gap(cursor, end);
    yield* pending.splice(0);
    if (pE > pS) yield { offset: pS, length: pE - pS };
  }

  /** Compact the RW layer alone (the normal commit of a container layer). */
  commit(sink: Sink, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.upper.commit(sink, opts);
  }

  /**
   * Flatten lower + upper into one committed layer (spec §2.11 with the combo's file order
   * [lower top … lower bottom, RW data]): the virtual size comes from the top lower layer's
   * header and the parent uuid from the RW data file's header, as in the reference, unless
   * overridden in `opts`. The lower must be a LayerStack or a SealedLayer.
   */
  async flatten(sink: Sink, opts: CommitOptions = {}): Promise<CommitResult> {
    const lower = this.lower;
    let files: readonly BlockFile[];
    if (lower instanceof LayerStack) files = lower.files;
    else if (lower instanceof SealedLayer) files = [lower.file];
    else throw new DadiError('EUNSUPPORTED', `${this.name}: flatten needs a LayerStack or SealedLayer below`);
    const lowerIndex = (lower as LayerStack | SealedLayer).index;
    const merged = mergeIndexes([this.upper.snapshot(files.length), lowerIndex], { tags: ['keep', 'keep'] });
    return commitLayer(merged, [...files, this.upper.dataFile], sink, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.upper.close();
    await this.lower.close();
  }
}
