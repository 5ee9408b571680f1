// `convert` of several images in one run: images convert concurrently (at most `jobs` at once, and
// no more than a memory budget holds at a per-image estimate), sharing one work folder so a layer
// converted for one image is reused by every other image with the same chain ID. Two images that
// share a chain ID not yet converted never run at once (the second waits and then reuses the
// layer instead of converting it again). Every target stays open for the run: a layer blob one
// target received is cross-repository mounted into the next target of the same registry rather
// than uploaded again (BlobSharingTarget). One image failing does not stop the others; each result
// names its image.

import { totalmem } from 'node:os';
import { DadiError } from '../errors.js';
import { openImageSource, openImageTarget } from '../image/source.js';
import type { Digest } from '../oci/digest.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import { hostPlatform } from '../oci/platform.js';
import { BlobSharingTarget, type SharedBlobs } from './blob-sharing.js';
import { type ConvertOptions, type ConvertResult, convertImage } from './convert.js';
import { chainIds } from './manifest.js';
import { clock } from './progress.js';

/**
 * What one conversion is assumed to hold in memory (decode and compression buffers, the ext4
 * writer's metadata, worker threads; a layer's data goes to scratch files); the memory budget
 * admits `budget / this` images at once.
 */
export const IMAGE_MEMORY_ESTIMATE = 512 * 1024 ** 2;

export interface BatchJob {
  source: string;
  target: string;
}

export interface BatchOptions extends Omit<ConvertOptions, 'manifest' | 'untagged' | 'signal'> {
  /** Images converted at once (default 1). */
  jobs?: number;
  /** Bytes the concurrent conversions may use together (default half the machine's memory). */
  memoryBudget?: number;
  /** Called as each image finishes (or fails). */
  onImage?: (r: BatchImageResult) => void;
}

export type BatchImageResult =
  | { source: string; target: string; ok: true; result: ConvertResult; blobs: BlobTransfers }
  | { source: string; target: string; ok: false; error: string };

/** How each layer blob reached the target: mounted from another repository, uploaded, or already there. */
export interface BlobTransfers {
  mounted: Digest[];
  uploaded: Digest[];
  present: Digest[];
}

export interface BatchResult {
  images: BatchImageResult[];
  /** Images converted at once at most (the budget and --jobs together). */
  concurrency: number;
  seconds: number;
  failed: number;
}

/** Images the budget lets convert at once: at least one, at most `jobs`. */
export function batchConcurrency(jobs: number, memoryBudget: number): number {
  return Math.max(1, Math.min(jobs, Math.floor(memoryBudget / IMAGE_MEMORY_ESTIMATE)));
}

/** Parse a list file: one `SRC DST` (or `SRC=DST`) a line; blank lines and `#` comments skipped. */
export function parseBatchList(text: string, file: string): BatchJob[] {
  const jobs: BatchJob[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const parts = line.includes('=') ? line.split('=') : line.split(/\s+/);
    if (parts.length !== 2 || !parts[0] || !parts[1])
      throw new DadiError('EINVAL', `${file}:${i + 1}: expected "SRC DST" or "SRC=DST", got "${line}"`);
    jobs.push({ source: parts[0].trim(), target: parts[1].trim() });
  }
  return jobs;
}

/** Chain IDs of the image `spec` names (what decides which images must not convert at once). */
async function imageChainIds(src: ImageSource, opts: BatchOptions): Promise<Digest[]> {
  const image = await src.resolve({ platform: opts.platform ?? hostPlatform() });
  const { config } = await src.getConfig(image.manifest.config);
  return chainIds(config.rootfs.diff_ids);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Convert every job's source into its target; see the file comment. */
export async function convertBatch(jobs: readonly BatchJob[], opts: BatchOptions = {}): Promise<BatchResult> {
  const started = clock();
  if (jobs.length === 0) throw new DadiError('EINVAL', 'convert: no images given');
  const concurrency = batchConcurrency(opts.jobs ?? 1, opts.memoryBudget ?? totalmem() / 2);
  const shared: SharedBlobs = new Map();
  const targets: ImageTarget[] = [];
  const results: BatchImageResult[] = new Array(jobs.length);
  const busyChains = new Set<Digest>();
  const pending = jobs.map((job, index) => ({ job, index }));
  const running = new Set<Promise<void>>();

  // Sources are opened and their chain IDs read once, when the image is first considered.
  const opened = new Map<number, { src: ImageSource; chains: Digest[] }>();
  const convertOne = async (job: BatchJob, index: number, chains: Digest[], src: ImageSource): Promise<void> => {
    try {
      const dst = new BlobSharingTarget(await openImageTarget(job.target, opts), shared);
      targets.push(dst);
      const result = await convertImage(src, dst, opts);
      results[index] = { ...job, ok: true, result, blobs: dst.transfers };
    } catch (e) {
      results[index] = { ...job, ok: false, error: message(e) };
    } finally {
      opened.delete(index);
      await src.close().catch(() => {});
      for (const c of chains) busyChains.delete(c);
      opts.onImage?.(results[index]!);
    }
  };

  const open = async (index: number, job: BatchJob) => {
    let o = opened.get(index);
    if (!o) {
      const src = await openImageSource(job.source, opts);
      try {
        o = { src, chains: await imageChainIds(src, opts) };
      } catch (e) {
        await src.close().catch(() => {});
        throw e;
      }
      opened.set(index, o);
    }
    return o;
  };

  try {
    // Each pass starts what may start; every pass either starts or fails an image, or waits for a
    // running one to finish, so the loop ends after at most 2 × jobs passes.
    for (let pass = 0; pending.length > 0 && pass <= 2 * jobs.length + 1; pass++) {
      for (let k = 0; k < pending.length && running.size < concurrency; ) {
        const { job, index } = pending[k]!;
        let o: { src: ImageSource; chains: Digest[] };
        try {
          o = await open(index, job);
        } catch (e) {
          pending.splice(k, 1);
          results[index] = { ...job, ok: false, error: message(e) };
          opts.onImage?.(results[index]);
          continue;
        }
        if (o.chains.some((c) => busyChains.has(c))) {
          k++;
          continue;
        }
        pending.splice(k, 1);
        for (const c of o.chains) busyChains.add(c);
        const p = convertOne(job, index, o.chains, o.src).finally(() => running.delete(p));
        running.add(p);
      }
      if (running.size > 0 && (pending.length > 0 || running.size >= concurrency)) await Promise.race(running);
    }
    await Promise.all(running);
  } finally {
    for (const { src } of opened.values()) await src.close().catch(() => {});
    for (const t of targets) await t.close().catch(() => {});
  }
  return {
    images: results,
    concurrency,
    seconds: clock() - started,
    failed: results.filter((r) => !r.ok).length,
  };
}
