// A pass-through BlockFile that tells an observer about every read (offset, bytes returned, bytes
// asked for): for counters and recorders that sit on the read path without changing it.

import type { BlockFile } from './blockfile.js';

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
