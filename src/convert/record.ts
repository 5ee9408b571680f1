// The local record of converted layers, keyed by the source chainID and the conversion settings
// (a converted layer depends on every layer below it, not just its own diff_id): one small JSON
// file per layer plus the committed blob, in a work folder. A re-run reuses a layer only when the
// blob is still there with the recorded size and digest. Not a registry-wide dedup database.

import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type Digest, Digester, digestHex, isDigest } from '../oci/digest.js';
import { writeFileAtomic } from '../util/atomic-output.js';

export interface LayerRecord {
  chainId: Digest;
  /** Settings the layer was made with (vsize etc.); part of the key. */
  settings: string;
  digest: Digest;
  size: number;
  uuid: string;
}

/** The default work folder: `$XDG_CACHE_HOME/dadi/convert` or `~/.cache/dadi/convert`. */
export function defaultWorkDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dadi', 'convert');
}

/** sha256 of a local file. */
export async function digestFile(path: string): Promise<{ digest: Digest; size: number }> {
  const d = new Digester();
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) d.update(c as Buffer);
  return { digest: d.digest(), size: d.size };
}

export class LayerRecords {
  constructor(readonly dir: string) {}

  private key(chainId: Digest, settings: string): string {
    return `${digestHex(chainId)}-${settings}`;
  }

  /** Where the committed blob of a layer is kept. */
  blobPath(digest: Digest): string {
    return join(this.dir, 'blobs', digestHex(digest));
  }

  /** A fresh scratch folder for one conversion job. */
  async scratch(name: string): Promise<string> {
    const p = join(this.dir, 'tmp', name);
    await rm(p, { recursive: true, force: true });
    await mkdir(p, { recursive: true });
    return p;
  }

  /**
   * The record of a finished layer whose blob is still present and intact (`verify`: re-hash it;
   * otherwise only the size is checked), else undefined.
   */
  async lookup(chainId: Digest, settings: string, verify = true): Promise<LayerRecord | undefined> {
    let rec: LayerRecord;
    try {
      rec = JSON.parse(await readFile(join(this.dir, 'layers', `${this.key(chainId, settings)}.json`), 'utf8'));
    } catch {
      return undefined;
    }
    if (rec.chainId !== chainId || rec.settings !== settings || !isDigest(rec.digest)) return undefined;
    const path = this.blobPath(rec.digest);
    const st = await stat(path).catch(() => undefined);
    if (!st || st.size !== rec.size) return undefined;
    if (verify && (await digestFile(path)).digest !== rec.digest) {
      await rm(path, { force: true });
      return undefined;
    }
    return rec;
  }

  /** Move a committed blob into the store and write its record. */
  async save(rec: LayerRecord, committedPath: string): Promise<string> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true });
    await mkdir(join(this.dir, 'layers'), { recursive: true });
    const path = this.blobPath(rec.digest);
    await rename(committedPath, path);
    const file = join(this.dir, 'layers', `${this.key(rec.chainId, rec.settings)}.json`);
    await writeFileAtomic(file, `${JSON.stringify(rec, null, 2)}\n`);
    return path;
  }
}
