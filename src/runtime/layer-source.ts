// How the daemon turns a layer reference into an open sealed LSMT layer: a pluggable table of
// `LayerSource`s keyed by kind. The built-in `file` source opens a local blob of any wrapping;
// remote layers (registry + cache) plug in later as another kind. Not the stacking (daemon.ts).
//
// @example
//   const r = new LayerResolver();            // knows 'file'
//   r.register({ kind: 'registry', open: async (spec) => ... });
//   const opened = await r.open({ kind: 'file', ref: '/layers/base.tar' });

import type { BlockFile } from '../blockfile/index.js';
import { LocalFile } from '../blockfile/index.js';
import { DadiError } from '../errors.js';
import type { SealedLayer } from '../format/lsmt/index.js';
import { openLayer } from '../image/open-layer.js';
import type { LayerSpec } from './layer-spec.js';

export { type LayerSpec, normalizeLayerSpec } from './layer-spec.js';

/** What `ps` shows per layer. */
export interface LayerInfo {
  kind: string;
  ref: string;
  /** Bytes read from the layer's blob (before decompression) since it was opened. */
  blobBytesRead: number;
}

export interface OpenedLayer {
  layer: SealedLayer;
  info(): LayerInfo;
}

export interface LayerSource {
  readonly kind: string;
  /** Open the layer; the returned layer's close() must release everything it holds. */
  open(spec: LayerSpec): Promise<OpenedLayer>;
}

/** Counts the bytes read through a BlockFile (for `ps`). */
export class CountingFile implements BlockFile {
  bytesRead = 0;
  constructor(private readonly inner: BlockFile) {}
  get name(): string {
    return this.inner.name;
  }
  get size(): number {
    return this.inner.size;
  }
  async read(buf: Uint8Array, offset: number): Promise<number> {
    const n = await this.inner.read(buf, offset);
    this.bytesRead += n;
    return n;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Local layer blobs (raw LSMT, ZFile, tar-wrapped). */
export const fileLayerSource: LayerSource = {
  kind: 'file',
  async open(spec) {
    const raw = new CountingFile(await LocalFile.open(spec.ref));
    try {
      const layer = await openLayer(raw);
      return { layer, info: () => ({ kind: 'file', ref: spec.ref, blobBytesRead: raw.bytesRead }) };
    } catch (e) {
      await raw.close();
      throw e;
    }
  },
};

export class LayerResolver {
  private readonly sources = new Map<string, LayerSource>();

  constructor(sources: LayerSource[] = [fileLayerSource]) {
    for (const s of sources) this.register(s);
  }

  /** Add or replace the source for `source.kind`. */
  register(source: LayerSource): void {
    this.sources.set(source.kind, source);
  }

  open(spec: LayerSpec): Promise<OpenedLayer> {
    const source = this.sources.get(spec.kind);
    if (!source) {
      throw new DadiError('EUNSUPPORTED', `layer ${spec.ref}: no layer source for kind ${JSON.stringify(spec.kind)}`);
    }
    return source.open(spec);
  }

  /** Open every layer (bottom first); on failure close the ones already opened. */
  /** Open every layer concurrently (each costs a few round trips for remote blobs); keep the order. */
  async openAll(specs: LayerSpec[]): Promise<OpenedLayer[]> {
    const settled = await Promise.allSettled(specs.map((s) => this.open(s)));
    const failed = settled.find((r) => r.status === 'rejected');
    if (!failed) return settled.map((r) => (r as PromiseFulfilledResult<OpenedLayer>).value);
    await Promise.all(
      settled.map((r) => (r.status === 'fulfilled' ? r.value.layer.close().catch(() => {}) : undefined)),
    );
    throw (failed as PromiseRejectedResult).reason;
  }
}
