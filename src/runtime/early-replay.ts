// Trace replays started while an image is resolved, before its mount asks for one. The manifest
// names both the layers and the acceleration layer: the trace is fetched in parallel with the
// layers' headers and indexes (which the daemon opens early), and the replay's range GETs start as
// soon as both are in. Started by the mount instead, the replay waited for the client's mount
// request, the trace's own fetch and the mount's stack: at 1 Gbit/50 ms its first GET left ~190 ms
// after the layers' first, and the kernel's ext4 mount waited for its data. The mount then replays
// the same plan on its own stack: its ranges are cached or in flight (the cache joins them), so it
// fetches nothing twice. An early replay holds the early-opened layers it reads until it ends.

import type { OpenedLayerBlob } from '../image/layer-blob.js';
import type { RemoteContext } from '../image/remote-context.js';
import type { TraceRecord } from '../prefetch/trace-format.js';
import { TraceReplay } from '../prefetch/trace-replay.js';
import { fetchWhy } from '../util/fetch-log.js';
import { loadAccelerationTrace } from './device-trace.js';
import type { LayerSpec } from './layer-source.js';

/** An early replay's trace no mount claimed is forgotten after this long (the replay itself ends on its own). */
const UNCLAIMED_MS = 30_000;

export interface EarlyReplayContext {
  remote: () => Promise<RemoteContext>;
  log: (message: string) => void;
}

interface EarlyReplay {
  /** The trace, fetched once for the early replay and the mount's. */
  records: Promise<TraceRecord[] | undefined>;
  /** The replay, once the trace and every layer are in (undefined: not started). */
  replay: Promise<TraceReplay | undefined>;
}

export class EarlyReplays {
  private readonly byRef = new Map<string, EarlyReplay>();
  /** Early-opened layers an early replay still reads: closing them waits for its end. */
  private readonly holds = new Map<OpenedLayerBlob, Promise<unknown>>();
  /** Replays not yet ended (claimed or not): stop() cancels them. */
  private readonly replays = new Set<TraceReplay>();
  private stopped = false;

  constructor(private readonly ctx: EarlyReplayContext) {}

  /**
   * Fetch the trace of `accel` and replay it on `layers` (the image's layers, bottom first, as the
   * early opens will give them) once both are in. One replay per acceleration layer at a time.
   */
  start(accel: LayerSpec, layers: Promise<OpenedLayerBlob | undefined>[], workers?: number): void {
    if (this.stopped || accel.kind !== 'registry' || this.byRef.has(accel.ref)) return;
    const ref = accel.ref;
    const records = loadAccelerationTrace(ref, accel, this.ctx);
    const replay = Promise.all([records, Promise.all(layers)]).then(([list, opened]) => {
      if (this.stopped || !list || opened.some((o) => !o)) return undefined;
      const blobs = opened as OpenedLayerBlob[];
      const r = fetchWhy(
        'trace',
        () =>
          new TraceReplay(
            blobs.map((b) => b.layer.file),
            list,
            { workers, log: this.ctx.log },
          ),
      );
      this.replays.add(r);
      void r.done.then((s) => {
        this.replays.delete(r);
        this.ctx.log(
          `early trace replay of ${ref}: ${s.reads}/${s.planned} ranges, ${s.bytes} bytes, ${s.failed} failed, ${s.ms} ms${s.cancelled ? ', cancelled' : ''}`,
        );
      });
      return r;
    });
    // Each layer is held from its open on (before the trace is in, a mount may already close it).
    const ended = replay.then((r) => r?.done).catch(() => undefined);
    for (const p of layers) {
      void p.then((o) => {
        if (!o) return;
        this.holds.set(o, ended);
        void ended.then(() => this.holds.get(o) === ended && this.holds.delete(o));
      });
    }
    const entry = { records, replay };
    this.byRef.set(ref, entry);
    // Kept for the mount (which may come after the replay ended: it still needs the trace), or
    // forgotten after a while, or at once when there is nothing to replay (a later resolve retries).
    const forget = () => {
      if (this.byRef.get(ref) === entry) this.byRef.delete(ref);
    };
    setTimeout(forget, UNCLAIMED_MS).unref();
    void replay.then((r) => r ?? forget());
  }

  /**
   * The trace of `ref` if an early replay fetched it, and a cancel for that replay (the mount's
   * device cancels it with its own when the container exits). Undefined: fetch it yourself.
   */
  claim(ref: string): { records: Promise<TraceRecord[] | undefined>; cancel: () => Promise<void> } | undefined {
    const e = this.byRef.get(ref);
    if (!e) return undefined;
    this.byRef.delete(ref);
    return { records: e.records, cancel: async () => void (await (await e.replay)?.cancel()) };
  }

  /** Settles when no early replay reads `layer` any more (at once when none does). */
  released(layer: OpenedLayerBlob): Promise<unknown> | undefined {
    return this.holds.get(layer);
  }

  /** Cancel every early replay and wait for the reads in flight (before the layers close). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.byRef.clear();
    await Promise.all([...this.replays].map((r) => r.cancel()));
  }
}
