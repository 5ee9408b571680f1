// Small content-addressed documents (image configs, platform manifests) a host already fetched,
// kept by digest beside the block cache by its owner, so that a re-run, or another image sharing
// them, resolves without fetching them again. A digest names its bytes for good, so an entry never
// goes stale; each read is checked against its digest, and a bad or foreign file is a miss.
// Not for tags (a tag moves: resolving one always asks the registry) nor for layer blobs (the
// block cache holds those).

import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, isDigest, sha256Of } from '../oci/digest.js';
import { writeFileAtomic } from '../util/atomic-output.js';

/** Larger documents are not kept (an image config or manifest is far below it). */
export const MAX_STORED_DOCUMENT_BYTES = 4 << 20;

export class DigestStore {
  /** Documents live in `<dir>/sha256/<hex>`. */
  constructor(readonly dir: string) {}

  private path(digest: string): string | undefined {
    return isDigest(digest) ? join(this.dir, 'sha256', digestHex(digest)) : undefined;
  }

  /** The document with this digest, or undefined (not kept, unreadable, or not matching it). */
  async get(digest: string): Promise<Buffer | undefined> {
    const p = this.path(digest);
    // A miss is answered at once: a cold start's config lookup comes as the manifest arrives, with
    // the layers' opens keeping the daemon's thread busy, and readFile's four thread-pool round
    // trips (open, stat, read, close) each waited for a turn of the event loop: 5-7 ms before the
    // config's GET left (the resolve's answer waits for it). A stat of the local store: microseconds.
    if (!p || !existsSync(p)) return undefined;
    const bytes = await readFile(p).catch(() => undefined);
    if (!bytes || bytes.length > MAX_STORED_DOCUMENT_BYTES || sha256Of(bytes) !== digest) return undefined;
    return bytes;
  }

  /** Keep `bytes` under `digest` (ignored when they do not hash to it, or are too large). */
  async put(digest: string, bytes: Uint8Array): Promise<void> {
    const p = this.path(digest);
    if (!p || bytes.length > MAX_STORED_DOCUMENT_BYTES || sha256Of(bytes) !== digest) return;
    await mkdir(join(this.dir, 'sha256'), { recursive: true });
    await writeFileAtomic(p, bytes);
  }
}
