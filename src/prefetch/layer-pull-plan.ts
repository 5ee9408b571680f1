// The decisions of the background whole-layer pull (spec §6.6), without I/O: its defaults (the
// config file's `download` section, src/config, sets and checks the rest), when it starts (delay + random extra), which
// chunks of a blob are still missing, and how long to wait before the next chunk so the pull
// stays under its rate. The driver that fetches and verifies is layer-pull.ts.

import { DadiError } from '../errors.js';

export interface LayerPullConfig {
  /** Pull whole layers in the background at all. */
  enabled: boolean;
  /** Seconds to wait after a device opens, plus a random part in [0, delayExtra). */
  delay: number;
  delayExtra: number;
  /** Upper bound on the pull's registry bandwidth, in MB/s (10^6 bytes per second). */
  maxMBps: number;
  /** Bytes per range read: a power of two ≥ 4 KiB (the cache aligns fills to its refill units). */
  chunkSize: number;
  /** Chunk reads in flight at once. */
  concurrency: number;
  /** Passes over a layer before the pull gives it up (the reference's tryCnt). */
  tries: number;
}

/**
 * The reference's defaults (`download` in overlaybd.json) except the delay: 300 s there, so that a
 * short-lived container never triggers it; 30 s here, so a host is soon independent of the
 * registry; and the chunks: 1 MiB × 4 in flight pulled the 133 MB Debian image in 2.2 s on
 * loopback where the reference's 256 KiB × 2 took 7.2 s, bound by each chunk's round trip and cache
 * write, not by the rate (bench/background-pull.ts). The config file's `download` section and the
 * DADI_PULL* variables override them (src/config/schema.ts). Benchmarks that count the bytes a
 * start needs set DADI_PULL=off.
 */
export const DEFAULT_LAYER_PULL: Readonly<LayerPullConfig> = {
  enabled: true,
  delay: 30,
  delayExtra: 10,
  maxMBps: 100,
  chunkSize: 1024 * 1024,
  concurrency: 4,
  tries: 5,
};

/** Milliseconds to wait before pulling: delay + random[0, delayExtra), `random` in [0, 1). */
export function startDelayMs(c: Pick<LayerPullConfig, 'delay' | 'delayExtra'>, random: () => number): number {
  return Math.round((c.delay + random() * c.delayExtra) * 1000);
}

export interface Chunk {
  offset: number;
  length: number;
}

/** The chunks of a `size`-byte blob, in order, of `chunkSize` bytes (the last one shorter). */
export function chunksOf(size: number, chunkSize: number): Chunk[] {
  const out: Chunk[] = [];
  for (let offset = 0; offset < size; offset += chunkSize)
    out.push({ offset, length: Math.min(chunkSize, size - offset) });
  return out;
}

/**
 * Rate limit by schedule: each chunk is due when the bytes sent before it would have taken at the
 * rate. So any interval [0, t] carries at most rate·t bytes plus one chunk (the first goes at
 * once), and an idle spell does not build up a burst beyond that. The clock is injected (ms).
 */
export class RateLimiter {
  private due: number;

  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number,
  ) {
    if (!(bytesPerSecond > 0)) throw new DadiError('EINVAL', `rate ${bytesPerSecond} bytes/s: expected > 0`);
    this.due = now();
  }

  /** Claim `bytes` now: returns the milliseconds to wait before sending them (0 when they may go). */
  claim(bytes: number): number {
    const t = this.now();
    if (this.due < t) this.due = t;
    const wait = this.due - t;
    this.due += (bytes / this.bytesPerSecond) * 1000;
    return wait;
  }
}
