// Background whole-layer pull (spec §6.6; the TOS paper's pull-based layer prefetch): after a
// delay, fetch every chunk of each layer blob that the host cache does not hold yet, one layer
// after the other, throttled, yielding to foreground fetches; then hash the cached blob and accept
// it only if it matches its digest. A verified layer is read wholly from the cache: the host no
// longer needs the registry for it. Chunks already cached are skipped, so a pull interrupted (the
// device closed, the daemon stopped) resumes where it was on the next open.
// The design keeps one read path: the pull fills the block cache (no local copy to switch to).
// Not the decisions (layer-pull-plan.ts) nor who starts it (the daemon, per mounted device).

import { setTimeout as sleepTimer } from 'node:timers/promises';
import { digestOf } from '../cache/verify.js';
import { DadiError } from '../errors.js';
import { chunksOf, type LayerPullConfig, RateLimiter, startDelayMs } from './layer-pull-plan.js';

/** What the pull needs of a cached blob (CachedBlob provides it). */
export interface PullableBlob {
  readonly name: string;
  readonly size: number;
  holds(offset: number, length: number): Promise<boolean>;
  prefetch(offset: number, length: number): Promise<void>;
  read(buf: Uint8Array, offset: number): Promise<number>;
  evict(offset: number, length: number): Promise<void>;
  /** Fetches that reads (not pulls) have in flight: the pull waits while there are any. */
  foregroundInflight(): number;
}

export interface PullTarget {
  /** For messages: `host/repo@sha256:…`. */
  name: string;
  /** `sha256:<hex>`: what the whole blob must hash to. */
  digest: string;
  blob: PullableBlob;
}

export type LayerPullState = 'waiting' | 'pulling' | 'verified' | 'failed' | 'stopped';

export interface LayerPullStatus {
  name: string;
  digest: string;
  state: LayerPullState;
  /** Chunks fetched by this pull (missing when it looked), and their bytes. */
  chunksFetched: number;
  bytesFetched: number;
  /** Chunks found already cached. */
  chunksSkipped: number;
  /** Passes started over this layer. */
  passes: number;
  /** Why the last pass failed. */
  error?: string;
}

export interface LayerPullDeps {
  /** Milliseconds (default performance.now). */
  now?: () => number;
  /** Wait `ms`, rejecting when `signal` aborts (default node:timers/promises setTimeout). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** In [0, 1), for the random part of the delay (default Math.random). */
  random?: () => number;
  log?: (message: string) => void;
  /** Shared by every pull of a host so that together they stay under the rate (default: one of its own). */
  limiter?: RateLimiter;
}

/** How often a pull waiting for the foreground to go idle looks again. */
export const IDLE_POLL_MS = 5;

/**
 * Start pulling `targets` (in order) in the background.
 *
 * @example
 *   const pull = new LayerPull(blobs, layerPullConfigOf(config), { log })  // config: src/config;
 *   …
 *   await pull.stop(); // before closing the blobs
 */
export class LayerPull {
  /** Resolves when every layer is verified, failed or stopped (never rejects). */
  readonly done: Promise<LayerPullStatus[]>;
  readonly status: LayerPullStatus[];
  private readonly abort = new AbortController();
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly log: (m: string) => void;
  private readonly limiter: RateLimiter;

  constructor(
    private readonly targets: readonly PullTarget[],
    private readonly config: LayerPullConfig,
    deps: LayerPullDeps = {},
  ) {
    this.now = deps.now ?? (() => performance.now());
    this.sleep = deps.sleep ?? ((ms, signal) => sleepTimer(ms, undefined, { signal }));
    this.log = deps.log ?? (() => {});
    this.limiter = deps.limiter ?? new RateLimiter(config.maxMBps * 1e6, this.now);
    this.status = targets.map((t) => ({
      name: t.name,
      digest: t.digest,
      state: 'waiting',
      chunksFetched: 0,
      bytesFetched: 0,
      chunksSkipped: 0,
      passes: 0,
    }));
    this.done = this.run(startDelayMs(config, deps.random ?? Math.random));
  }

  /** Stop taking chunks, wait for those in flight; layers not verified yet end as 'stopped'. */
  async stop(): Promise<LayerPullStatus[]> {
    this.abort.abort();
    return this.done;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async run(delayMs: number): Promise<LayerPullStatus[]> {
    try {
      if (delayMs > 0) await this.sleep(delayMs, this.abort.signal);
      for (let i = 0; i < this.targets.length && !this.stopped; i++)
        await this.pullLayer(this.targets[i]!, this.status[i]!);
    } catch (e) {
      if (!this.stopped) this.log(`background pull: ${(e as Error).message}`);
    }
    for (const s of this.status) if (s.state === 'waiting' || s.state === 'pulling') s.state = 'stopped';
    return this.status;
  }

  private async pullLayer(t: PullTarget, s: LayerPullStatus): Promise<void> {
    s.state = 'pulling';
    for (let pass = 1; pass <= this.config.tries && !this.stopped; pass++) {
      s.passes = pass;
      try {
        await this.fetchMissing(t, s);
        if (this.stopped) return;
        await this.verify(t);
        if (this.stopped) return;
        s.state = 'verified';
        s.error = undefined;
        this.log(
          `background pull: ${t.name} complete and verified (${s.chunksFetched} chunks, ${s.bytesFetched} bytes fetched, ` +
            `${s.chunksSkipped} already cached)`,
        );
        return;
      } catch (e) {
        if (this.stopped) return;
        s.error = (e as Error).message;
        this.log(`background pull: pass ${pass} of ${this.config.tries} failed: ${s.error}`);
      }
    }
    if (!this.stopped) s.state = 'failed';
  }

  /** Fetch every chunk the cache lacks, `concurrency` at a time; throws if some chunk is still missing. */
  private async fetchMissing(t: PullTarget, s: LayerPullStatus): Promise<void> {
    const chunks = chunksOf(t.blob.size, this.config.chunkSize);
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (next < chunks.length && failure === undefined && !this.stopped) {
        const c = chunks[next++]!;
        try {
          if (await t.blob.holds(c.offset, c.length)) {
            s.chunksSkipped++;
            continue;
          }
          await this.whenIdle(t.blob);
          const wait = this.limiter.claim(c.length);
          if (wait > 0) await this.sleep(wait, this.abort.signal);
          await t.blob.prefetch(c.offset, c.length);
          s.chunksFetched++;
          s.bytesFetched += c.length;
        } catch (e) {
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.config.concurrency, chunks.length) }, worker));
    if (this.stopped) return;
    if (failure !== undefined) throw failure;
    let missing = 0;
    for (const c of chunks) if (!(await t.blob.holds(c.offset, c.length))) missing++;
    if (missing) {
      throw new DadiError('EIO', `${t.name}: ${missing} chunks were fetched but not kept by the cache (full?)`);
    }
  }

  /** Wait while reads have fetches in flight: a foreground read never queues behind a chunk we start. */
  private async whenIdle(blob: PullableBlob): Promise<void> {
    while (blob.foregroundInflight() > 0) await this.sleep(IDLE_POLL_MS, this.abort.signal);
  }

  /** Hash the cached blob; on a mismatch drop its cached bytes (which are wrong is unknown) and throw. */
  private async verify(t: PullTarget): Promise<void> {
    const got = await digestOf(t.blob, t.digest.split(':')[0]);
    if (got === t.digest) return;
    await t.blob.evict(0, t.blob.size);
    throw new DadiError(
      'ECORRUPT',
      `${t.name}: the pulled blob hashes to ${got}, not its digest; its cached bytes were dropped`,
    );
  }
}
