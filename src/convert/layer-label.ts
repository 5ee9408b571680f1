// How convert names a layer in its errors: `layer i/n (digest)` after the image's name, added once.

import { DadiError } from '../errors.js';
import type { Descriptor } from '../oci/manifest.js';

/** `layer 2/5 (sha256:…)`, 1-based as people count. */
export function layerLabel(i: number, n: number, d: Descriptor): string {
  return `layer ${i + 1}/${n} (${d.digest})`;
}

/** Give an error the layer's name unless it names it already. */
export function withLabel(e: unknown, label: string, digest: string): DadiError {
  if (e instanceof DadiError) {
    return e.message.includes(digest) ? e : new DadiError(e.code, `${label}: ${e.message}`, { cause: e });
  }
  const msg = (e as Error)?.message ?? String(e);
  return new DadiError('EFORMAT', `${label}: ${msg}`, { cause: e });
}
