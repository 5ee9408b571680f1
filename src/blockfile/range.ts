// Helpers every stage shares: exact reads with clear errors, and a window (slice) view.

import { DadiError } from '../errors.js';
import type { BlockFile, PrefetchableBlockFile } from './blockfile.js';
import { prefetchRange } from './prefetch.js';

/**
 * What every `read` checks first (the BlockFile contract): the file is still open (else EINVAL)
 * and `offset` is a byte position, a non-negative safe integer (else ERANGE).
 */
export function checkRead(name: string, offset: number, closed: boolean): void {
  if (closed) throw new DadiError('EINVAL', `${name}: read after close`);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new DadiError('ERANGE', `${name}: bad read offset ${offset}`);
}

/** Read exactly `length` bytes at `offset`, or fail naming the file. */
export async function readExact(file: BlockFile, offset: number, length: number, what = 'data'): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new DadiError('ERANGE', `${file.name}: ${what}: bad range ${offset}+${length}`);
  }
  if (offset + length > file.size) {
    throw new DadiError(
      'ERANGE',
      `${file.name}: ${what}: range ${offset}+${length} is past the end of the file (${file.size} bytes)`,
    );
  }
  const buf = Buffer.allocUnsafe(length);
  const n = await file.read(buf, offset);
  if (n !== length) {
    throw new DadiError('EIO', `${file.name}: ${what}: short read at ${offset} (${n} of ${length} bytes)`);
  }
  return buf;
}

/** Fill `buf` exactly at `offset`, or fail naming the file. */
export async function readInto(file: BlockFile, buf: Uint8Array, offset: number, what = 'data'): Promise<void> {
  const n = await file.read(buf, offset);
  if (n !== buf.length) {
    throw new DadiError('EIO', `${file.name}: ${what}: short read at ${offset} (${n} of ${buf.length} bytes)`);
  }
}

/** A read-only window [start, start+size) of another BlockFile. Closing it closes the inner file. */
export class SliceFile implements PrefetchableBlockFile {
  constructor(
    private readonly inner: BlockFile,
    readonly start: number,
    readonly size: number,
    readonly name = inner.name,
  ) {
    if (start < 0 || size < 0 || start + size > inner.size) {
      throw new DadiError('ERANGE', `${inner.name}: window ${start}+${size} exceeds the file (${inner.size} bytes)`);
    }
  }

  private closed = false;

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    if (offset >= this.size) return 0;
    const n = Math.min(buf.length, this.size - offset);
    return this.inner.read(n === buf.length ? buf : buf.subarray(0, n), this.start + offset);
  }

  async prefetch(offset: number, length: number): Promise<void> {
    checkRead(this.name, offset, this.closed);
    const n = Math.max(0, Math.min(length, this.size - offset));
    return prefetchRange(this.inner, this.start + offset, n);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.inner.close();
  }
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
