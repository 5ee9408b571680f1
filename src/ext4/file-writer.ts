// FileWriter: writes one new regular file's data sequentially — whole blocks straight to newly
// allocated runs, all-zero blocks left as holes — and hands the extents to the filesystem at the
// end. It sees the filesystem only through FileBlocks; it does not know inodes or metadata.

import { type Extent, pushBlock } from './extent.js';
import { BLOCK_SIZE } from './layout.js';

const ZERO_BLOCK = new Uint8Array(BLOCK_SIZE);

/** What a FileWriter needs from its filesystem. */
export interface FileBlocks {
  /** Allocate a run of up to `max` consecutive data blocks: [first block, length]. */
  allocRun(max: number): Promise<[number, number]>;
  /** Write data (whole blocks, or a zero-padded tail) at physical block `pblk`. */
  putData(pblk: number, data: Uint8Array): Promise<void>;
  /** Record the file's extents and size in its inode. */
  finish(ino: number, extents: Extent[], size: number): Promise<void>;
}

/** Sequential writer of one new regular file's data (made by Ext4.createFile). */
export class FileWriter {
  private readonly extents: Extent[] = [];
  private pos = 0;
  private partial = new Uint8Array(BLOCK_SIZE);
  private partialLen = 0;

  constructor(
    private readonly blocks: FileBlocks,
    readonly ino: number,
    private readonly sparse: boolean,
  ) {}

  /** Append bytes. */
  async write(chunk: Uint8Array): Promise<void> {
    let p = 0;
    if (this.partialLen > 0) {
      const take = Math.min(BLOCK_SIZE - this.partialLen, chunk.length);
      this.partial.set(chunk.subarray(0, take), this.partialLen);
      this.partialLen += take;
      p = take;
      if (this.partialLen === BLOCK_SIZE) {
        await this.putBlocks(this.partial);
        this.partial = new Uint8Array(BLOCK_SIZE);
        this.partialLen = 0;
      }
    }
    const whole = Math.floor((chunk.length - p) / BLOCK_SIZE) * BLOCK_SIZE;
    if (whole > 0) await this.putBlocks(chunk.subarray(p, p + whole));
    p += whole;
    if (p < chunk.length) {
      this.partial.set(chunk.subarray(p), 0);
      this.partialLen = chunk.length - p;
    }
  }

  /**
   * Append `bytes` of zeros: the whole blocks among them become a hole (also without `sparse`),
   * the parts sharing a block with data are written as zeros.
   */
  async skip(bytes: number): Promise<void> {
    if (this.partialLen > 0) {
      const take = Math.min(BLOCK_SIZE - this.partialLen, bytes);
      await this.write(ZERO_BLOCK.subarray(0, take));
      bytes -= take;
    }
    const whole = Math.floor(bytes / BLOCK_SIZE);
    this.pos += whole;
    if (bytes > whole * BLOCK_SIZE) await this.write(ZERO_BLOCK.subarray(0, bytes - whole * BLOCK_SIZE));
  }

  /** Whole blocks at the current position. */
  private async putBlocks(data: Uint8Array): Promise<void> {
    const n = data.length / BLOCK_SIZE;
    let i = 0;
    while (i < n) {
      if (this.sparse && isZero(data, i)) {
        i++;
        this.pos++;
        continue;
      }
      let j = i + 1;
      while (j < n && !(this.sparse && isZero(data, j))) j++;
      // Blocks [i, j) hold data.
      while (i < j) {
        const [start, len] = await this.blocks.allocRun(j - i);
        await this.blocks.putData(start, data.subarray(i * BLOCK_SIZE, (i + len) * BLOCK_SIZE));
        pushBlock(this.extents, this.pos, start, len);
        this.pos += len;
        i += len;
      }
    }
  }

  /** Finish the file; its size is the bytes written (or `size`, for a trailing hole). */
  async end(size?: number): Promise<void> {
    const written = this.pos * BLOCK_SIZE + this.partialLen;
    if (this.partialLen > 0) {
      this.partial.fill(0, this.partialLen);
      await this.putBlocks(this.partial);
    }
    await this.blocks.finish(this.ino, this.extents, Math.max(size ?? 0, written));
  }
}

function isZero(data: Uint8Array, block: number): boolean {
  return Buffer.compare(data.subarray(block * BLOCK_SIZE, (block + 1) * BLOCK_SIZE), ZERO_BLOCK) === 0;
}
