// Sources for cache tests and benchmarks: a simulated remote (per-request latency, shared
// bandwidth), fault injection, request counting. Not for production paths.

import type { BlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';

export interface SourceCounts {
  requests: number;
  bytes: number;
}

/** Counts requests and bytes; optionally delays each request by `delayMs`. */
export class CountingSource implements BlockFile, SourceCounts {
  requests = 0;
  bytes = 0;
  readonly log: Array<[offset: number, length: number]> = [];
  constructor(
    readonly inner: BlockFile,
    readonly delayMs = 0,
  ) {}
  get name(): string {
    return this.inner.name;
  }
  get size(): number {
    return this.inner.size;
  }
  async read(buf: Uint8Array, offset: number): Promise<number> {
    this.requests++;
    this.log.push([offset, buf.length]);
    if (this.delayMs > 0) await sleep(this.delayMs);
    const n = await this.inner.read(buf, offset);
    this.bytes += n;
    return n;
  }
  async close(): Promise<void> {}
}

export interface RemoteModel {
  /** Fixed cost per request (the registry's ~4 ms). */
  latencyMs: number;
  /** Link bandwidth shared by all requests, bytes/s. */
  bandwidth: number;
  /** Bandwidth one request can reach alone, bytes/s (default: the link's). */
  perRequestBandwidth?: number;
}

/**
 * A remote-like source: each request waits `latencyMs`, then its bytes cross one shared link
 * (requests queue on it) no faster than `perRequestBandwidth`.
 */
export class SimulatedRemote implements BlockFile, SourceCounts {
  requests = 0;
  bytes = 0;
  private linkFree = 0;
  constructor(
    readonly inner: BlockFile,
    readonly model: RemoteModel,
  ) {}
  get name(): string {
    return `remote ${this.inner.name}`;
  }
  get size(): number {
    return this.inner.size;
  }
  async read(buf: Uint8Array, offset: number): Promise<number> {
    this.requests++;
    const len = Math.min(buf.length, Math.max(0, this.size - offset));
    const arrive = performance.now() + this.model.latencyMs;
    const start = Math.max(arrive, this.linkFree);
    this.linkFree = start + (len / this.model.bandwidth) * 1000;
    const done = Math.max(
      this.linkFree,
      arrive + (len / (this.model.perRequestBandwidth ?? this.model.bandwidth)) * 1000,
    );
    const n = await this.inner.read(buf, offset);
    this.bytes += n;
    const wait = done - performance.now();
    if (wait > 0) await sleep(wait);
    return n;
  }
  async close(): Promise<void> {}
}

export interface Faults {
  /** Probability a request returns bytes with one flipped. */
  corrupt?: number;
  /** Probability a request fails with EIO. */
  fail?: number;
  /** Seeded random numbers in [0, 1), so a failing run replays. */
  random: () => number;
}

/** Injects corrupted bytes and failures; counts them. */
export class FaultySource implements BlockFile {
  requests = 0;
  corrupted = 0;
  failed = 0;
  constructor(
    readonly inner: BlockFile,
    public faults: Faults,
  ) {}
  get name(): string {
    return `faulty ${this.inner.name}`;
  }
  get size(): number {
    return this.inner.size;
  }
  async read(buf: Uint8Array, offset: number): Promise<number> {
    this.requests++;
    const rnd = this.faults.random;
    if (rnd() < (this.faults.fail ?? 0)) {
      this.failed++;
      throw new DadiError('EIO', `${this.name}: injected failure at ${offset}`);
    }
    const n = await this.inner.read(buf, offset);
    if (n > 0 && rnd() < (this.faults.corrupt ?? 0)) {
      this.corrupted++;
      buf[Math.floor(rnd() * n)]! ^= 0x5a;
    }
    return n;
  }
  async close(): Promise<void> {}
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Deterministic pseudo-random bytes (xorshift), so tests can regenerate a blob anywhere. */
export function patternBytes(size: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  for (; i < size; i++) b[i] = i & 0xff;
  return b;
}
