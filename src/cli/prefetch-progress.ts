// Following a device's prefetch from the CLI: the trace replay and the background layer pulls run
// in the daemon, so the CLI polls the daemon's status (the figures `dadi status` shows) and draws
// them as bars. Used by `mount --wait-prefetch` and `record-trace`.

import { setTimeout as sleep } from 'node:timers/promises';
import type { DaemonClient } from '../runtime/client.js';
import type { DeviceStatus } from '../runtime/status.js';
import type { Progress, ProgressBar } from './progress.js';

const POLL_MS = 200;

/** States a background pull no longer moves from. */
const PULL_ENDED = new Set(['verified', 'failed', 'stopped']);

/** The device's replay is over (or it has none) and none of its pulls is still going. */
export function prefetchDone(d: DeviceStatus): boolean {
  const replayOver = d.trace?.mode !== 'replay' || d.trace.finished;
  return replayOver && d.pulls.every((p) => PULL_ENDED.has(p.state));
}

/**
 * Poll until the device's prefetch is done (or the device is gone), drawing bars on `bars`.
 * Returns the device's last status, undefined if it went away.
 */
export async function waitForPrefetch(
  client: DaemonClient,
  id: string,
  bars: Progress | undefined,
): Promise<DeviceStatus | undefined> {
  const drawn = new Map<string, ProgressBar>();
  const draw = (key: string, label: string, value: number, total: number, status: string, bytes = false) => {
    if (!bars) return;
    let bar = drawn.get(key);
    if (!bar) {
      bar = bars.bar(label, total, { bytes });
      drawn.set(key, bar);
    }
    bar.update(value, { total, status });
  };
  // Ends when the daemon says so: a replay always finishes (done or cancelled), a pull ends.
  for (;;) {
    const d = (await client.status()).devices.find((x) => x.id === id);
    if (!d) return undefined;
    const t = d.trace;
    if (t?.mode === 'replay') {
      const state = t.finished ? 'finished' : 'replaying';
      draw('replay', 'trace replay', t.doneReads, Math.max(t.plannedReads, t.doneReads), state);
    }
    for (const p of d.pulls) {
      draw(`pull ${p.layer}`, `pull ${shortLayer(p.layer)}`, p.fetchedBytes, p.sizeBytes, p.state, true);
    }
    if (prefetchDone(d)) return d;
    await sleep(POLL_MS);
  }
}

/** Draw a recording's progress (time against `seconds`, reads recorded) until `signal` aborts. */
export async function showRecording(
  client: DaemonClient,
  seconds: number,
  bars: Progress,
  signal: AbortSignal,
): Promise<void> {
  const bar = bars.bar('recording', seconds);
  const start = performance.now();
  while (!signal.aborted) {
    const status = await client.status().catch(() => undefined);
    const recorded = Math.max(
      0,
      ...(status?.devices ?? []).map((d) => (d.trace?.source === 'record-trace' ? d.trace.recordedReads : 0)),
    );
    const elapsed = Math.min(seconds, Math.floor((performance.now() - start) / 1000));
    bar.update(elapsed, { status: `s, ${recorded} reads recorded` });
    await sleep(POLL_MS * 2, undefined, { signal }).catch(() => {});
  }
}

/** `host/repo@sha256:0123456789ab` (the digest cut to 12 hex digits). */
function shortLayer(ref: string): string {
  return ref.replace(/(@sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1');
}
