// The acceleration layer's trace for a mount: taken from the fetch the daemon started at resolve
// time when there is one (no second fetch), fetched anew when that one failed or there is none.

import { describe, expect, it } from 'vitest';
import type { TraceRecord } from '../prefetch/trace-format.js';
import type { TraceStore } from '../prefetch/trace-store.js';
import { type DeviceTraceContext, prepareDeviceTrace } from './device-trace.js';
import { registryLayerSpecs } from './layer-spec.js';

const [accel] = registryLayerSpecs('127.0.0.1:5000', 'app', [{ digest: `sha256:${'a'.repeat(64)}`, size: 9216 }]);
const RECORDS: TraceRecord[] = [
  { layer: 0, offset: 4096, count: 8192 },
  { layer: 0, offset: 1 << 20, count: 4096 },
];

/** A context whose registry fails every fetch, counting the attempts, with the log kept. */
function context(early: DeviceTraceContext['early']) {
  const seen = { remote: 0, log: [] as string[] };
  const ctx: DeviceTraceContext = {
    remote: async () => {
      seen.remote++;
      throw new Error('registry unreachable');
    },
    store: {} as TraceStore,
    log: (m) => seen.log.push(m),
    early,
  };
  return { ctx, seen };
}

async function replayedRecords(ctx: DeviceTraceContext) {
  const t = await prepareDeviceTrace({ accelerationLayer: accel }, ctx);
  return t?.stackOptions.replay?.records;
}

describe('prepareDeviceTrace with a trace fetched at resolve time', () => {
  it("replays the early fetch's records without fetching the layer again", async () => {
    const claimed: string[] = [];
    const { ctx, seen } = context((ref) => {
      claimed.push(ref);
      return Promise.resolve(RECORDS);
    });
    expect(await replayedRecords(ctx)).toEqual(RECORDS);
    expect(claimed).toEqual([accel!.ref]);
    expect(seen.remote).toBe(0);
  });

  it('fetches the layer itself when the early fetch failed, and says why it has no trace', async () => {
    const { ctx, seen } = context(() => Promise.resolve(undefined));
    expect(await replayedRecords(ctx)).toBeUndefined();
    expect(seen.remote).toBe(1);
    expect(seen.log.join('\n')).toMatch(/trace of acceleration layer .* dropped .*registry unreachable/);
  });

  it('fetches the layer itself when nothing was fetched early', async () => {
    const { ctx, seen } = context(() => undefined);
    expect(await replayedRecords(ctx)).toBeUndefined();
    expect(seen.remote).toBe(1);
  });
});
