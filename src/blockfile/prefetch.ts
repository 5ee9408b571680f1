// Prefetch a range of any BlockFile: through its prefetch() when it has one (a cached blob, a ZFile
// or LSMT stage passing the range down to the cache), else by reading it and dropping the bytes.
// For prefetchers that need the bytes in the cache but not in hand (directory blocks, file readahead).

import type { BlockFile, PrefetchableBlockFile } from './blockfile.js';

/** Largest read the fallback makes at once. */
const FALLBACK_CHUNK = 1 << 20;

export function canPrefetch(file: BlockFile): file is PrefetchableBlockFile {
  return typeof (file as Partial<PrefetchableBlockFile>).prefetch === 'function';
}

/** Bring [offset, offset+length) of `file` into the cache below it (see PrefetchableBlockFile). */
export async function prefetchRange(file: BlockFile, offset: number, length: number): Promise<void> {
  const end = Math.min(file.size, offset + length);
  if (end <= offset) return;
  if (canPrefetch(file)) return file.prefetch(offset, end - offset);
  const buf = Buffer.allocUnsafe(Math.min(FALLBACK_CHUNK, end - offset));
  for (let at = offset; at < end; at += buf.length) {
    const n = await file.read(buf.subarray(0, Math.min(buf.length, end - at)), at);
    if (n === 0) return;
  }
}
