// A pass-through BlockFile that tells an observer about every read (offset, bytes returned, bytes
// asked for): for counters and recorders that sit on the read path without changing it.

import { type BlockFile, isWritable, type WritableBlockFile } from './blockfile.js';

export type ReadObserver = (offset: number, returned: number, requested: number) => void;

/** `inner`, with `observe` called after each read that did not throw. Closing closes `inner`. */
export function observeReads(inner: BlockFile, observe: ReadObserver): BlockFile {
  return {
    get name() {
      return inner.name;
    },
    get size() {
      return inner.size;
    },
    async read(buf: Uint8Array, offset: number): Promise<number> {
      const n = await inner.read(buf, offset);
      observe(offset, n, buf.length);
      return n;
    },
    close: () => inner.close(),
  };
}

/**
 * `inner`, with `before(offset, length)` called as each read starts (before `inner` sees it), so
 * that work the read makes likely can start beside it. A writable `inner` stays writable (writes,
 * discards and flushes pass straight through); closing closes `inner`.
 */
export function announceReads(inner: WritableBlockFile, before: ReadAnnouncer): WritableBlockFile;
export function announceReads(inner: BlockFile, before: ReadAnnouncer): BlockFile;
export function announceReads(inner: BlockFile, before: ReadAnnouncer): BlockFile {
  const file: BlockFile & Partial<WritableBlockFile> = {
    get name() {
      return inner.name;
    },
    get size() {
      return inner.size;
    },
    read(buf: Uint8Array, offset: number): Promise<number> {
      before(offset, buf.length);
      return inner.read(buf, offset);
    },
    close: () => inner.close(),
  };
  if (isWritable(inner)) {
    file.write = (buf, offset) => inner.write(buf, offset);
    file.discard = (offset, length) => inner.discard(offset, length);
    file.flush = () => inner.flush();
  }
  return file;
}

export type ReadAnnouncer = (offset: number, length: number) => void;
