// What a host remembers of the images it resolved: the resolution (manifest, config, layers) of
// each reference, saved beside the block cache by its owner, so that an image whose layers the
// cache holds (after a background pull) can start while its registry is unreachable. Used only
// when the registry cannot be reached, and the caller says so (a tag may have moved since).
// Not a content store: blobs live in the cache.

import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-output.js';
import type { ResolvedRunImage } from './resolve-image.js';

/** Records larger than this are not ours (a manifest with 255 layers is far below it). */
const MAX_RECORD_BYTES = 4 << 20;

export interface ImageRecord {
  ref: string;
  platform?: string;
  savedAt: string;
  resolved: ResolvedRunImage;
}

export class ImageRecords {
  /** Records live in `<cacheDir>/images`, a folder the cache's own scan ignores. */
  constructor(readonly cacheDir: string) {}

  private path(ref: string, platform: string | undefined): string {
    const id = createHash('sha256')
      .update(`${ref}\n${platform ?? ''}`)
      .digest('hex');
    return join(this.cacheDir, 'images', `${id}.json`);
  }

  async save(ref: string, platform: string | undefined, resolved: ResolvedRunImage): Promise<void> {
    await mkdir(join(this.cacheDir, 'images'), { recursive: true });
    const rec: ImageRecord = { ref, platform, savedAt: new Date().toISOString(), resolved };
    await writeFileAtomic(this.path(ref, platform), JSON.stringify(rec));
  }

  /** The saved record of `ref`, or undefined (none, or not one of ours). */
  async load(ref: string, platform: string | undefined): Promise<ImageRecord | undefined> {
    try {
      const text = await readFile(this.path(ref, platform), 'utf8');
      if (text.length > MAX_RECORD_BYTES) return undefined;
      const rec = JSON.parse(text) as ImageRecord;
      if (rec.ref !== ref || !Array.isArray(rec.resolved?.layers) || typeof rec.resolved.pinned !== 'string') {
        return undefined;
      }
      return rec;
    } catch {
      return undefined;
    }
  }
}

/**
 * Resolve through `resolve`, saving each result (in the background); when it fails for a reason other than a missing
 * image or refused credentials, fall back to the saved record and tell `log`.
 */
export async function resolveWithRecord(
  records: ImageRecords,
  ref: string,
  platform: string | undefined,
  resolve: () => Promise<ResolvedRunImage>,
  log: (message: string) => void,
): Promise<ResolvedRunImage> {
  let resolved: ResolvedRunImage;
  try {
    resolved = await resolve();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOTFOUND' || code === 'EAUTH' || code === 'EINVAL') throw e;
    const rec = await records.load(ref, platform);
    if (!rec) throw e;
    log(
      `${ref}: registry unreachable (${(e as Error).message}); using the resolution saved at ${rec.savedAt} (${rec.resolved.pinned})`,
    );
    return rec.resolved;
  }
  // Saved off the launch path: the write syncs, and the run needs only the answer.
  void records
    .save(ref, platform, resolved)
    .catch((e) => log(`${ref}: cannot save its resolution: ${(e as Error).message}`));
  return resolved;
}
