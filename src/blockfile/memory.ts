// An in-memory BlockFile: test models, small scratch files. Grows on write.

import type { WritableBlockFile } from './blockfile.js';
import { checkRead } from './range.js';

export class MemoryFile implements WritableBlockFile {
  private buf: Uint8Array;
  private _size: number;
  private closed = false;

  constructor(
    init: Uint8Array | number = 0,
    readonly name = 'memory',
  ) {
    if (typeof init === 'number') {
      this.buf = new Uint8Array(init);
      this._size = init;
    } else {
      this.buf = init;
      this._size = init.length;
    }
  }

  get size(): number {
    return this._size;
  }

  /** The current contents (a view, not a copy). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this._size);
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    if (offset >= this._size) return 0;
    const n = Math.min(buf.length, this._size - offset);
    buf.set(this.buf.subarray(offset, offset + n));
    return n;
  }

  async write(data: Uint8Array, offset: number): Promise<void> {
    const end = offset + data.length;
    if (end > this.buf.length) {
      const grown = new Uint8Array(Math.max(end, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this._size));
      this.buf = grown;
    }
    this.buf.set(data, offset);
    if (end > this._size) this._size = end;
  }

  async discard(offset: number, length: number): Promise<void> {
    const end = Math.min(offset + length, this._size);
    if (end > offset) this.buf.fill(0, offset, end);
  }

  /** Set the size: bytes past it are dropped (read as zeros if the file grows again). */
  async truncate(size: number): Promise<void> {
    if (size < this._size) this.buf.fill(0, size, this._size);
    else if (size > this.buf.length) await this.write(new Uint8Array(0), size);
    this._size = size;
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
  }
}
