// A throwaway WritableBlockFile (a conversion's writable layer) over a spill file created on first
// write. Not durable: flush does nothing (the bytes are read back from the page cache by the
// commit moments later), and the file is removed on close. Keeping the bytes in memory instead
// was measured slower on the 2-vCPU VM: a first touch of fresh memory is a page fault per 4 KiB
// (see DEFAULT_SCRATCH_MEMORY's note in convert/convert.ts).

import { rm } from 'node:fs/promises';
import { DadiError } from '../errors.js';
import type { WritableBlockFile } from './blockfile.js';
import { LocalFile } from './local.js';
import { checkRead } from './range.js';

export class ScratchFile implements WritableBlockFile {
  private spill: LocalFile | undefined;
  private spilling: Promise<LocalFile> | undefined;
  private _size = 0;
  private closed = false;

  /**
   * `spillPath` must not exist; it is created on the first write.
   * @example const f = new ScratchFile(join(dir, 'data'));
   */
  constructor(readonly spillPath: string) {}

  get name(): string {
    return this.spillPath;
  }

  get size(): number {
    return this._size;
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    const n = Math.max(0, Math.min(buf.length, this._size - offset));
    if (n === 0) return 0;
    const want = buf.subarray(0, n);
    const got = this.spill ? await this.spill.read(want, offset) : 0;
    want.fill(0, got); // a hole at the spill file's end (a truncate that grew the file)
    return n;
  }

  async write(data: Uint8Array, offset: number): Promise<void> {
    if (this.closed) throw new DadiError('EINVAL', `${this.name}: write after close`);
    if (data.length > 0) await (await this.spillFile()).write(data, offset);
    this._size = Math.max(this._size, offset + data.length);
  }

  async discard(offset: number, length: number): Promise<void> {
    const end = Math.min(offset + length, this._size);
    if (end > offset && this.spill) await this.spill.discard(offset, end - offset);
  }

  /** Set the size: bytes past it are dropped (read as zeros if the file grows again). */
  async truncate(size: number): Promise<void> {
    if (this.spill) await this.spill.truncate(size);
    this._size = size;
  }

  /** Nothing to make durable: the file is gone once the conversion ends. */
  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const spill = await this.spilling?.catch(() => undefined);
    if (spill) {
      await spill.close();
      await rm(this.spillPath, { force: true });
    }
  }

  private spillFile(): Promise<LocalFile> {
    this.spilling ??= LocalFile.create(this.spillPath).then((f) => (this.spill = f));
    return this.spilling;
  }
}
