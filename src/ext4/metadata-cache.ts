// A write-back cache of 4 KiB metadata blocks (bitmaps, inode tables, directories, extent and
// xattr blocks). Blocks changed in memory are written at flush, coalesced, and only when their
// bytes really differ from what the device held — so a layer diff holds just the changed blocks.
// Not the host's cache of remote blob bytes (src/cache BlockCache): this one lives inside one Ext4.

import type { BlockFile, WritableBlockFile } from '../blockfile/blockfile.js';
import { BLOCK_SIZE } from './layout.js';

const MAX_WRITE = 256; // blocks per coalesced write (1 MiB)

/**
 * Write whole blocks (number → 4 KiB), sorted and coalesced into runs. A run is gathered in one
 * buffer reused from run to run (each write is done before the next starts), a lone block is
 * written as it is: fresh memory costs a page fault per 4 KiB on first touch (~15-50 µs on the
 * 2-vCPU VM), and mkfs alone writes ~700 blocks.
 */
export async function writeBlocks(file: WritableBlockFile, blocks: Map<number, Uint8Array>): Promise<number> {
  const nums = [...blocks.keys()].sort((a, b) => a - b);
  let written = 0;
  let gather = new Uint8Array(0);
  for (let i = 0; i < nums.length; ) {
    let j = i + 1;
    while (j < nums.length && nums[j] === nums[j - 1]! + 1 && j - i < MAX_WRITE) j++;
    let run = blocks.get(nums[i]!)!;
    if (j - i > 1) {
      if (gather.length < (j - i) * BLOCK_SIZE) gather = new Uint8Array(Math.min(nums.length, MAX_WRITE) * BLOCK_SIZE);
      run = gather.subarray(0, (j - i) * BLOCK_SIZE);
      for (let k = i; k < j; k++) run.set(blocks.get(nums[k]!)!, (k - i) * BLOCK_SIZE);
    }
    await file.write(run, nums[i]! * BLOCK_SIZE);
    written += j - i;
    i = j;
  }
  return written;
}

export class MetadataBlockCache {
  private readonly blocks = new Map<number, Uint8Array>();
  /** Device contents of blocks modified since load (absent: not known, always written). */
  private readonly original = new Map<number, Uint8Array | null>();
  private readonly dirty = new Set<number>();
  /** Blocks written by the last flush (for measurements). */
  lastFlushBlocks = 0;

  constructor(private readonly file: BlockFile) {}

  /** The cached block (read from the device on first use). Do not modify: use `modify`. */
  async get(blk: number): Promise<Uint8Array> {
    let b = this.blocks.get(blk);
    if (!b) {
      b = new Uint8Array(BLOCK_SIZE);
      await this.file.read(b, blk * BLOCK_SIZE); // short reads past EOF leave zeros
      this.blocks.set(blk, b);
    }
    return b;
  }

  /** The block, to be modified in place; it will be written at flush if its bytes changed. */
  async modify(blk: number): Promise<Uint8Array> {
    const b = await this.get(blk);
    if (!this.original.has(blk)) this.original.set(blk, b.slice());
    this.dirty.add(blk);
    return b;
  }

  /** Replace a block's whole contents (a newly allocated block whose old bytes do not matter). */
  set(blk: number, data: Uint8Array): void {
    if (!this.original.has(blk)) this.original.set(blk, this.blocks.get(blk) ?? null);
    this.blocks.set(blk, data);
    this.dirty.add(blk);
  }

  /** Forget a block (freed: it may be reused for file data written around the cache). */
  drop(blk: number): void {
    this.blocks.delete(blk);
    this.dirty.delete(blk);
    this.original.delete(blk);
  }

  has(blk: number): boolean {
    return this.blocks.has(blk);
  }

  async flush(file: WritableBlockFile): Promise<number> {
    const out = new Map<number, Uint8Array>();
    for (const blk of this.dirty) {
      const b = this.blocks.get(blk)!;
      const o = this.original.get(blk);
      if (o && Buffer.compare(o, b) === 0) continue;
      out.set(blk, b);
    }
    const n = await writeBlocks(file, out);
    for (const [blk, b] of out) this.original.set(blk, b.slice());
    for (const blk of this.dirty) if (!out.has(blk)) this.original.delete(blk);
    // Written blocks keep an original equal to their new contents, so re-modifying compares right.
    this.dirty.clear();
    this.lastFlushBlocks = n;
    return n;
  }
}
