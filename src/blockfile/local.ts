// A local file (or block device) as a BlockFile, read-only or writable.
// Not a cache or a sparse-aware view: Node has no SEEK_DATA, so holes read as zeros.

import { type FileHandle, open } from 'node:fs/promises';
import { DadiError } from '../errors.js';
import { outputError, registerOpenInput } from '../util/atomic-output.js';
import type { WritableBlockFile } from './blockfile.js';
import { checkRead } from './range.js';

export class LocalFile implements WritableBlockFile {
  private closed = false;
  private constructor(
    readonly name: string,
    private readonly fh: FileHandle,
    private _size: number,
    readonly writable: boolean,
    /** Outputs are refused while this file is open as an input (util/atomic-output.ts). */
    private readonly release: () => void = () => {},
  ) {}

  /** Open an existing file. */
  static async open(path: string, opts: { writable?: boolean } = {}): Promise<LocalFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, opts.writable ? 'r+' : 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOTFOUND' : 'EIO';
      throw new DadiError(code, `${path}: cannot open: ${(e as Error).message}`, { cause: e });
    }
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) {
      await fh.close();
      throw new DadiError('EINVAL', `${path}: not a regular file`);
    }
    return new LocalFile(path, fh, st.size, !!opts.writable, registerOpenInput(path, st.dev, st.ino));
  }

  /** Create a new file (fails if it exists unless `overwrite`). */
  static async create(path: string, opts: { overwrite?: boolean } = {}): Promise<LocalFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, opts.overwrite ? 'w+' : 'wx+');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code === 'EEXIST' ? 'EEXIST' : 'EIO';
      throw new DadiError(code, `${path}: cannot create: ${(e as Error).message}`, { cause: e });
    }
    return new LocalFile(path, fh, 0, true);
  }

  get size(): number {
    return this._size;
  }

  get handle(): FileHandle {
    return this.fh;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    let done = 0;
    const want = Math.min(buf.length, Math.max(0, this._size - offset));
    while (done < want) {
      const { bytesRead } = await this.fh.read(buf, done, want - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.assertWritable();
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesWritten } = await this.fh.write(buf, done, buf.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw outputError(this.name, e);
    }
    if (offset + buf.length > this._size) this._size = offset + buf.length;
  }

  /** Zero a range. Node has no fallocate(PUNCH_HOLE); we write zeros (rarely used on local files). */
  async discard(offset: number, length: number): Promise<void> {
    this.assertWritable();
    const end = Math.min(offset + length, this._size);
    const zeros = new Uint8Array(Math.min(1 << 20, Math.max(0, end - offset)));
    for (let p = offset; p < end; p += zeros.length) {
      await this.write(zeros.subarray(0, Math.min(zeros.length, end - p)), p);
    }
  }

  async truncate(size: number): Promise<void> {
    this.assertWritable();
    try {
      await this.fh.truncate(size);
    } catch (e) {
      throw outputError(this.name, e);
    }
    this._size = size;
  }

  async flush(): Promise<void> {
    if (this.writable) await this.fh.datasync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.release();
    await this.fh.close();
  }

  private assertWritable(): void {
    if (!this.writable) throw new DadiError('EINVAL', `${this.name}: opened read-only`);
  }
}
