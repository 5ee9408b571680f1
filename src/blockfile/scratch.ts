// A throwaway WritableBlockFile (a conversion's writable layer): its first `memory` bytes live in
// memory pages, the rest in a file created on first need. Through a file, the 220 MB of the Debian
// base layer's data went into the kernel's page cache and back out for the commit (~0.45 s of
// kernel copies on the 2-vCPU VM, perf); in memory they cost the first touch of their pages only,
// and no syscalls. That first touch is a page fault per 4 KiB, and costly on the VM: with
// `ahead`, a PageMaker faults pages in on a worker thread before they are needed (page-maker.ts).
// Not durable: flush does nothing, and the file is removed on close.

import { rm } from 'node:fs/promises';
import { DadiError } from '../errors.js';
import type { WritableBlockFile } from './blockfile.js';
import { LocalFile } from './local.js';
import { PageMaker } from './page-maker.js';
import { checkRead } from './range.js';

/** Memory is taken in pages of this size (default), each on its first write. */
const PAGE = 8 << 20;

export class ScratchFile implements WritableBlockFile {
  private readonly pages: (Uint8Array | undefined)[] = [];
  /** Bytes kept in memory: offsets below this; the spill file holds the rest at `offset - limit`. */
  private readonly limit: number;
  private spill: LocalFile | undefined;
  private spilling: Promise<LocalFile> | undefined;
  private _size = 0;
  private closed = false;
  private readonly maker: PageMaker | undefined;

  /**
   * `spillPath` is where bytes past `memory` (rounded down to whole pages) go; it must not exist.
   * With `ahead` > 0, up to that many pages are made ahead of need on a worker thread.
   * @example const f = new ScratchFile(join(dir, 'data'), 256 << 20);
   */
  constructor(
    readonly spillPath: string,
    memory: number,
    private readonly page = PAGE,
    ahead = 0,
  ) {
    this.limit = Math.max(0, Math.floor(memory / page) * page);
    const pages = this.limit / page;
    if (ahead > 0 && pages > 1) this.maker = new PageMaker(page, ahead, pages);
  }

  /** Pages that came faulted in from the worker (see `ahead`). */
  get prefaultedPages(): number {
    return this.maker?.prefaulted ?? 0;
  }

  get name(): string {
    return this.spillPath;
  }

  get size(): number {
    return this._size;
  }

  /** Bytes held in memory pages. */
  get memoryBytes(): number {
    return this.pages.reduce((sum, p) => sum + (p ? p.length : 0), 0);
  }

  async read(buf: Uint8Array, offset: number): Promise<number> {
    checkRead(this.name, offset, this.closed);
    const n = Math.max(0, Math.min(buf.length, this._size - offset));
    const inMemory = Math.max(0, Math.min(n, this.limit - offset));
    for (let done = 0; done < inMemory; ) {
      const pos = offset + done;
      const page = this.pages[Math.floor(pos / this.page)];
      const at = pos % this.page;
      const take = Math.min(this.page - at, inMemory - done);
      if (page) buf.set(page.subarray(at, at + take), done);
      else buf.fill(0, done, done + take);
      done += take;
    }
    if (n > inMemory) {
      const rest = buf.subarray(inMemory, n);
      const got = this.spill ? await this.spill.read(rest, offset + inMemory - this.limit) : 0;
      rest.fill(0, got); // a hole at the spill file's end (a truncate that grew the file)
    }
    return n;
  }

  async write(data: Uint8Array, offset: number): Promise<void> {
    if (this.closed) throw new DadiError('EINVAL', `${this.name}: write after close`);
    const inMemory = Math.max(0, Math.min(data.length, this.limit - offset));
    for (let done = 0; done < inMemory; ) {
      const pos = offset + done;
      const i = Math.floor(pos / this.page);
      const at = pos % this.page;
      const take = Math.min(this.page - at, inMemory - done);
      let page = this.pages[i];
      if (!page) this.pages[i] = page = this.maker?.take() ?? new Uint8Array(this.page);
      page.set(data.subarray(done, done + take), at);
      done += take;
    }
    if (data.length > inMemory) {
      const file = await this.spillFile();
      await file.write(data.subarray(inMemory), offset + inMemory - this.limit);
    }
    this._size = Math.max(this._size, offset + data.length);
  }

  async discard(offset: number, length: number): Promise<void> {
    const end = Math.min(offset + length, this._size);
    for (let pos = offset; pos < Math.min(end, this.limit); ) {
      const page = this.pages[Math.floor(pos / this.page)];
      const at = pos % this.page;
      const take = Math.min(this.page - at, end - pos);
      page?.fill(0, at, at + take);
      pos += take;
    }
    if (end > this.limit && this.spill) {
      const from = Math.max(offset, this.limit) - this.limit;
      await this.spill.discard(from, end - this.limit - from);
    }
  }

  /** Set the size: bytes past it are dropped (read as zeros if the file grows again). */
  async truncate(size: number): Promise<void> {
    if (size < this._size) await this.discard(size, this._size - size);
    if (this.spill) await this.spill.truncate(Math.max(0, size - this.limit));
    this._size = size;
  }

  /** Nothing to make durable: the file is gone once the conversion ends. */
  async flush(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pages.length = 0;
    await this.maker?.close();
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
