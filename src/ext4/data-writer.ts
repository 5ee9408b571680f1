// Straight-through writes of file data blocks: consecutive physical blocks (also across files)
// are gathered into one large aligned write. Not a cache: data is never read back from here
// except through `flush` first.

import type { WritableBlockFile } from '../blockfile/blockfile.js';
import { BLOCK_SIZE } from './layout.js';

const STAGING = 4 << 20;

export class DataWriter {
  private buf = new Uint8Array(STAGING);
  private start = -1; // first physical block in buf
  private count = 0; // blocks in buf
  bytesWritten = 0;

  constructor(private readonly file: WritableBlockFile) {}

  /** Queue `data` (whole blocks, or a tail that is zero-padded) for physical block `pblk` on. */
  async put(pblk: number, data: Uint8Array): Promise<void> {
    const blocks = Math.ceil(data.length / BLOCK_SIZE);
    if (this.count > 0 && (pblk !== this.start + this.count || (this.count + blocks) * BLOCK_SIZE > STAGING))
      await this.flush();
    if (blocks * BLOCK_SIZE > STAGING) {
      const padded = new Uint8Array(blocks * BLOCK_SIZE);
      padded.set(data);
      await this.file.write(padded, pblk * BLOCK_SIZE);
      this.bytesWritten += padded.length;
      return;
    }
    if (this.count === 0) this.start = pblk;
    const o = this.count * BLOCK_SIZE;
    this.buf.set(data, o);
    if (data.length % BLOCK_SIZE) this.buf.fill(0, o + data.length, o + blocks * BLOCK_SIZE);
    this.count += blocks;
  }

  async flush(): Promise<void> {
    if (this.count === 0) return;
    const n = this.count * BLOCK_SIZE;
    await this.file.write(this.buf.subarray(0, n), this.start * BLOCK_SIZE);
    this.bytesWritten += n;
    this.count = 0;
    this.start = -1;
  }
}
