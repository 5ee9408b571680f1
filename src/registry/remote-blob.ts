// A registry blob as a read-only BlockFile: size from HEAD, reads by HTTP range GETs (split into
// ranges of at most `maxRangeBytes`, several in flight). Uncached: src/cache wraps it. An optional
// `verify` hook lets an upper layer that can check bytes (ZFile CRCs) reject a read and have it
// fetched again.

import type { BlockFile } from '../blockfile/blockfile.js';
import { checkRead } from '../blockfile/range.js';
import { DadiError } from '../errors.js';
import { type Digest, parseDigest } from '../oci/digest.js';
import { fetchLogNow, fetchLogOn, logFetch } from '../util/fetch-log.js';
import type { RegistryClient } from './client.js';
import type { OpOptions, RepoRef } from './repo-request.js';

export interface RemoteBlobOptions {
  /** Known size (e.g. from the manifest descriptor): skips the HEAD. */
  size?: number;
  /** Name for errors (default `host/repo@sha256:…`). */
  name?: string;
  /** Largest single range GET (default 4 MiB). */
  maxRangeBytes?: number;
  /** Range GETs in flight for one large read (default 4). */
  parallel?: number;
  /**
   * Integrity hook: called with each completed read (`offset`, the bytes). Returning false (or
   * throwing an ECORRUPT DadiError) makes the read fetch the bytes again, up to `verifyTries`
   * times in all, then fail with ECORRUPT. Use it where the caller can check content, e.g. the
   * ZFile layer validating block CRCs of a range it asked for.
   */
  verify?: (offset: number, data: Uint8Array) => boolean | Promise<boolean>;
  /** Fetches per read when `verify` rejects (default 3). */
  verifyTries?: number;
  /** Deadline of one `read()` in ms, verify re-fetches included (default: the client's deadlineMs per range GET). */
  readDeadlineMs?: number;
  signal?: AbortSignal;
}

/** Counters for `--stats`. */
export interface RemoteBlobStats {
  /** `read()` calls served. */
  reads: number;
  /** Range GET operations issued (each may have been retried by the transport). */
  rangeRequests: number;
  /** Bytes fetched from the registry (re-fetches after a failed verify included). */
  bytesFetched: number;
  /** Reads rejected by `verify`. */
  verifyFailures: number;
  /**
   * The quickest range GET of at most QUICK_GET_BYTES so far, in ms: what one dependent read costs
   * at least (the round trip and the registry's own time), unset until one is made.
   */
  quickestGetMs?: number;
}

/** GETs this small take about a round trip whatever the link's rate (RemoteBlobStats.quickestGetMs). */
const QUICK_GET_BYTES = 64 * 1024;

/**
 * ```ts
 * const blob = await RemoteBlob.open(client, parseReference('127.0.0.1:5000/app@sha256:…'));
 * const n = await blob.read(buf, 1 << 20);
 * console.log(blob.stats);
 * ```
 */
export class RemoteBlob implements BlockFile {
  readonly stats: RemoteBlobStats = { reads: 0, rangeRequests: 0, bytesFetched: 0, verifyFailures: 0 };
  private closed = false;

  private constructor(
    private readonly client: RegistryClient,
    readonly repo: RepoRef,
    readonly digest: Digest,
    readonly size: number,
    readonly name: string,
    private readonly opts: RemoteBlobOptions,
  ) {}

  /**
   * Open a blob. `digest` defaults to the digest of `repo` when it is a Reference with one.
   * Without `opts.size`, a HEAD request gives the size (ENOTFOUND when the blob is absent).
   */
  static async open(
    client: RegistryClient,
    repo: RepoRef & { digest?: string },
    digest?: string,
    opts: RemoteBlobOptions = {},
  ): Promise<RemoteBlob> {
    const dText = digest ?? repo.digest;
    if (!dText) throw new DadiError('EINVAL', `${repo.registry}/${repo.repository}: a blob reference needs @sha256:…`);
    const d = parseDigest(dText, `${repo.registry}/${repo.repository}`);
    const name = opts.name ?? `${repo.registry}/${repo.repository}@${d}`;
    const op: OpOptions = {};
    if (opts.signal) op.signal = opts.signal;
    const size = opts.size ?? (await client.blobSize(repo, d, op));
    if (!Number.isSafeInteger(size) || size < 0) throw new DadiError('EINVAL', `${name}: bad size ${size}`);
    return new RemoteBlob(client, { registry: repo.registry, repository: repo.repository }, d, size, name, opts);
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    if (offset >= this.size || buf.length === 0) return 0;
    const n = Math.min(buf.length, this.size - offset);
    const view = n === buf.length ? buf : buf.subarray(0, n);
    this.stats.reads++;
    const tries = this.opts.verify ? Math.max(1, this.opts.verifyTries ?? 3) : 1;
    const op: OpOptions = {};
    if (this.opts.signal) op.signal = this.opts.signal;
    if (this.opts.readDeadlineMs !== undefined) op.deadline = Date.now() + this.opts.readDeadlineMs;
    for (let t = 1; ; t++) {
      await this.fetch(view, offset, op);
      if (!this.opts.verify) return n;
      let ok: boolean;
      try {
        ok = await this.opts.verify(offset, view);
      } catch (e) {
        if (!(e instanceof DadiError) || e.code !== 'ECORRUPT') throw e;
        ok = false;
      }
      if (ok) return n;
      this.stats.verifyFailures++;
      if (t >= tries) {
        throw new DadiError(
          'ECORRUPT',
          `${this.name}: bytes ${offset}-${offset + n - 1} failed verification ${t} times`,
        );
      }
    }
  }

  /** Fill `view` from `offset` with range GETs of at most maxRangeBytes, `parallel` in flight. */
  private async fetch(view: Uint8Array, offset: number, op: OpOptions): Promise<void> {
    const max = this.opts.maxRangeBytes ?? 4 << 20;
    const one = async (at: number, len: number) => {
      this.stats.rangeRequests++;
      const t0 = fetchLogOn ? fetchLogNow() : 0;
      const start = performance.now();
      const got = await this.client.readBlob(this.repo, this.digest, view.subarray(at, at + len), offset + at, op);
      this.stats.bytesFetched += got;
      if (len <= QUICK_GET_BYTES) {
        const ms = performance.now() - start;
        const quickest = this.stats.quickestGetMs;
        if (quickest === undefined || ms < quickest) this.stats.quickestGetMs = ms;
      }
      if (fetchLogOn) logFetch({ k: 'get', blob: this.digest, off: offset + at, len: got, t0, t1: fetchLogNow() });
      if (got !== len) {
        throw new DadiError(
          'EIO',
          `${this.name}: short read at ${offset + at} (${got} of ${len} bytes); the blob is smaller than ${this.size}?`,
        );
      }
    };
    if (view.length <= max) return one(0, view.length);
    const parts: Array<[number, number]> = [];
    for (let at = 0; at < view.length; at += max) parts.push([at, Math.min(max, view.length - at)]);
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (next < parts.length && failure === undefined) {
        const [at, len] = parts[next++]!;
        try {
          await one(at, len);
        } catch (e) {
          failure ??= e;
        }
      }
    };
    const lanes = Math.min(parts.length, Math.max(1, this.opts.parallel ?? 4));
    // Wait for every lane before failing: none may write into the caller's buffer afterwards.
    await Promise.all(Array.from({ length: lanes }, worker));
    if (failure !== undefined) throw failure;
  }

  /** Closing does not close the shared client. */
  async close(): Promise<void> {
    this.closed = true;
  }
}
