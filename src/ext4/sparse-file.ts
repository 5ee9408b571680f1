// A sparse in-memory WritableBlockFile of fixed virtual size: 64 KiB chunks allocated on write,
// holes read as zeros. For tests and benchmarks of a 64 GiB filesystem without a 64 GiB buffer.

import type { WritableBlockFile } from '../blockfile/blockfile.js';
import { checkRead } from '../blockfile/range.js';

const CHUNK = 1 << 16;

export class SparseMemoryFile implements WritableBlockFile {
  private readonly chunks = new Map<number, Uint8Array>();
  /** Chunks shared with the file this one was cloned from: copied before their first write. */
  private readonly inherited = new Set<number>();
  /** Bytes passed to `write` (what a writable layer would record). */
  bytesWritten = 0;
  writes = 0;
  private closed = false;

  constructor(
    readonly size: number,
    readonly name = 'sparse-memory',
  ) {}

  /** Bytes of allocated chunks. */
  get allocated(): number {
    return this.chunks.size * CHUNK;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    const n = Math.max(0, Math.min(buf.length, this.size - offset));
    let done = 0;
    while (done < n) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const co = pos % CHUNK;
      const take = Math.min(CHUNK - co, n - done);
      const c = this.chunks.get(ci);
      if (c) buf.set(c.subarray(co, co + take), done);
      else buf.fill(0, done, done + take);
      done += take;
    }
    return n;
  }

  async write(data: Uint8Array, offset: number): Promise<void> {
    this.bytesWritten += data.length;
    this.writes++;
    let done = 0;
    while (done < data.length) {
      const pos = offset + done;
      const ci = Math.floor(pos / CHUNK);
      const co = pos % CHUNK;
      const take = Math.min(CHUNK - co, data.length - done);
      let c = this.chunks.get(ci);
      if (c && this.inherited.delete(ci)) this.chunks.set(ci, (c = c.slice()));
      if (!c) this.chunks.set(ci, (c = new Uint8Array(CHUNK)));
      c.set(data.subarray(done, done + take), co);
      done += take;
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    const zeros = new Uint8Array(Math.min(length, CHUNK));
    for (let p = offset; p < offset + length; p += CHUNK) {
      const n = Math.min(CHUNK - (p % CHUNK), offset + length - p);
      if (this.chunks.has(Math.floor(p / CHUNK))) await this.write(zeros.subarray(0, n), p);
    }
  }

  /**
   * A copy that shares this file's chunks until it writes them (many cases from one mkfs, cheaply).
   * This file must not be written while its clones are in use.
   */
  clone(name = this.name): SparseMemoryFile {
    const c = new SparseMemoryFile(this.size, name);
    for (const [i, chunk] of this.chunks) {
      c.chunks.set(i, chunk);
      c.inherited.add(i);
    }
    return c;
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
  }

  /** Copy the contents into a local sparse file (for e2fsprogs); only allocated chunks are written. */
  async saveTo(path: string): Promise<void> {
    const { open } = await import('node:fs/promises');
    const fh = await open(path, 'w');
    try {
      await fh.truncate(this.size);
      for (const [ci, c] of [...this.chunks].sort((a, b) => a[0] - b[0])) await fh.write(c, 0, c.length, ci * CHUNK);
    } finally {
      await fh.close();
    }
  }
}
