// Trace prefetch for a daemon device, decided per mount request: replay the trace of the image's
// acceleration layer, or (auto-trace) replay the trace this host stored for the image, or record
// one — into a file the client named (record-trace) or into the host's store on the image's first
// start. The stack composes the recorder / replay (image/layer-stack.ts); this module picks the
// mode, loads traces, and writes the recording when the device goes. A trace that cannot be used
// is dropped with a warning in the daemon log: the device works without it.

import { open, writeFile } from 'node:fs/promises';
import { DadiError } from '../errors.js';
import type { OpenedLayerStack, StackOptions } from '../image/layer-stack.js';
import type { RemoteContext } from '../image/remote-context.js';
import { MAX_ACCEL_LAYER_BYTES, traceOfAccelerationLayer } from '../prefetch/accel-layer.js';

/** Largest trace file replayed: the most records a trace may hold, and its header. */
const MAX_TRACE_FILE_BYTES = TRACE_HEADER_SIZE + MAX_TRACE_RECORDS * TRACE_RECORD_SIZE;

import {
  decodeTrace,
  encodeTrace,
  MAX_TRACE_RECORDS,
  TRACE_HEADER_SIZE,
  TRACE_RECORD_SIZE,
  type TraceRecord,
} from '../prefetch/trace-format.js';
import { TraceRecorder } from '../prefetch/trace-recorder.js';
import type { TraceStore } from '../prefetch/trace-store.js';
import { layerBlobSourceOf } from './layer-source.js';
import type { DeviceTraceInfo, MountTraceRequest } from './protocol.js';

/** Auto-trace records at most this long after the device opens (a start-up, not a service's life). */
export const AUTO_TRACE_RECORD_MS = 60_000;

export interface DeviceTrace {
  /** What to pass to openLayerStack. */
  stackOptions: Pick<StackOptions, 'record' | 'replay'>;
  info(stack: OpenedLayerStack): DeviceTraceInfo;
  /** Stop replaying / recording; write the recording. Never throws (failures are logged). */
  finish(stack: OpenedLayerStack): Promise<DeviceTraceInfo>;
}

export interface DeviceTraceContext {
  remote: () => Promise<RemoteContext>;
  store: TraceStore;
  log: (message: string) => void;
  /** Replay reads in flight when the request names no count. */
  workers?: number;
  /** The trace of this acceleration layer (spec ref) fetched at resolve time, if it was (undefined: none). */
  early?: (ref: string) => Promise<TraceRecord[] | undefined> | undefined;
}

export async function prepareDeviceTrace(
  req: MountTraceRequest | undefined,
  ctx: DeviceTraceContext,
): Promise<DeviceTrace | undefined> {
  if (!req) return undefined;
  const workers = typeof req.workers === 'number' && req.workers > 0 ? Math.min(req.workers, 256) : ctx.workers;
  if (req.accelerationLayer) {
    const spec = req.accelerationLayer;
    const early = ctx.early?.(spec.ref);
    // An early fetch that failed is tried once more here, with the warning in the device's log.
    const records = early
      ? early.then((r) => r ?? loadAccelerationTrace(spec.ref, spec, ctx))
      : loadAccelerationTrace(spec.ref, spec, ctx);
    return replayMode('acceleration-layer', records, workers, ctx);
  }
  const auto = req.auto;
  if (auto) {
    let stored: TraceRecord[] | undefined;
    try {
      stored = await ctx.store.get(auto.manifestDigest);
    } catch (e) {
      ctx.log(`warning: stored trace of ${auto.image} dropped (recording a new one): ${(e as Error).message}`);
      await ctx.store.remove(auto.manifestDigest).catch(() => {});
    }
    if (stored) return replayMode('auto-trace', Promise.resolve(stored), workers, ctx);
    return recordMode('auto-trace', ctx, async (records) => {
      const info = await ctx.store.put(auto.image, auto.manifestDigest, records);
      ctx.log(`auto-trace: stored ${info.records} reads of ${auto.image}`);
    });
  }
  if (typeof req.record === 'string') {
    const path = req.record;
    if (!path.startsWith('/')) throw new DadiError('EINVAL', `mount: trace record path must be absolute: ${path}`);
    return recordMode('record-trace', ctx, (records) => writeFile(path, encodeTrace(records)));
  }
  if (typeof req.replay === 'string') {
    const path = req.replay;
    if (!path.startsWith('/')) throw new DadiError('EINVAL', `mount: trace replay path must be absolute: ${path}`);
    return replayMode('record-trace', loadTraceFile(path, ctx), workers, ctx);
  }
  return undefined;
}

/** A trace file `record` wrote; undefined (and a warning) when unusable. */
async function loadTraceFile(path: string, ctx: DeviceTraceContext): Promise<TraceRecord[] | undefined> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      if (size > MAX_TRACE_FILE_BYTES) throw new DadiError('EFORMAT', `${path}: ${size} bytes, larger than a trace`);
      const bytes = Buffer.alloc(size);
      await fh.read(bytes, 0, size, 0);
      return decodeTrace(bytes, path);
    } finally {
      await fh.close();
    }
  } catch (e) {
    ctx.log(`warning: trace ${path} dropped (no prefetch): ${(e as Error).message}`);
    return undefined;
  }
}

/** Fetch an acceleration layer and decode its trace; undefined (and a warning) when unusable. */
export async function loadAccelerationTrace(
  ref: string,
  spec: Parameters<typeof layerBlobSourceOf>[0],
  ctx: Pick<DeviceTraceContext, 'remote' | 'log'>,
): Promise<TraceRecord[] | undefined> {
  try {
    const src = layerBlobSourceOf(spec);
    if (src.kind !== 'registry') throw new DadiError('EUNSUPPORTED', 'acceleration layers come from a registry');
    const { client } = await ctx.remote();
    const blob = await client.fetchBlob(src.repo, src.digest, { maxSize: MAX_ACCEL_LAYER_BYTES });
    return await traceOfAccelerationLayer(blob, ref);
  } catch (e) {
    ctx.log(`warning: trace of acceleration layer ${ref} dropped (no prefetch): ${(e as Error).message}`);
    return undefined;
  }
}

function replayMode(
  source: DeviceTraceInfo['source'],
  records: Promise<readonly TraceRecord[] | undefined>,
  workers: number | undefined,
  ctx: DeviceTraceContext,
): DeviceTrace {
  let dropped = false;
  const tracked = records.then((r) => {
    dropped = r === undefined;
    return r;
  });
  const info = (stack: OpenedLayerStack): DeviceTraceInfo => ({
    mode: 'replay',
    source,
    replay: stack.replay?.stats(),
    ...(dropped ? { warning: 'trace dropped (see the daemon log)' } : {}),
  });
  return {
    stackOptions: { replay: { records: tracked, workers, log: ctx.log } },
    info,
    async finish(stack) {
      const s = await stack.stopPrefetch();
      if (s)
        ctx.log(
          `trace replay (${source}): ${s.reads}/${s.planned} reads, ${s.bytes} bytes, ${s.failed} failed, ${s.ms} ms${s.cancelled ? ', cancelled' : ''}`,
        );
      return info(stack);
    },
  };
}

function recordMode(
  source: DeviceTraceInfo['source'],
  ctx: DeviceTraceContext,
  save: (records: readonly TraceRecord[]) => Promise<unknown>,
): DeviceTrace {
  const recorder = new TraceRecorder();
  const limit = source === 'auto-trace' ? setTimeout(() => recorder.stop(), AUTO_TRACE_RECORD_MS) : undefined;
  limit?.unref();
  const info = (): DeviceTraceInfo => ({ mode: 'record', source, recorded: recorder.records().length });
  return {
    stackOptions: { record: recorder },
    info,
    async finish() {
      clearTimeout(limit);
      recorder.stop();
      try {
        await save(recorder.records());
      } catch (e) {
        ctx.log(`warning: recorded trace not saved: ${(e as Error).message}`);
        return { ...info(), warning: `trace not saved: ${(e as Error).message}` };
      }
      return info();
    },
  };
}
