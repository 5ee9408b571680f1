// The few ZFile blocks decoded last for reads within one block, kept decoded, and the decodes of
// such blocks in flight: a read of a block decoded a moment ago (or being decoded) copies it
// instead of reading its stored bytes from the cache again and checking and decoding them again.
// Not a block cache: the stored bytes live in the block cache below, and a read spanning blocks
// (file data: the kernel keeps it) neither uses nor fills this.
//
// Why: the ext4 readers a mount starts (launch files, the kernel's metadata reads) read the same
// inode-table and directory blocks again and again; a cold `cat` start through the snapshotter read
// 372 stored ranges in its first 600 ms, 266 of them again (fetch log), most of them at once.

/** A block's decoded bytes (its whole length: block size, or less for the file's last block). */
export type DecodedBlock = Uint8Array;

export class RecentBlocks {
  /** Decoded blocks by number, least recently used first (Map keeps insertion order). */
  private readonly blocks = new Map<number, DecodedBlock>();
  /** Decodes in flight, by block number: a second reader joins the first. */
  private readonly decoding = new Map<number, Promise<DecodedBlock>>();

  constructor(
    /** Blocks kept (at least 1). */
    readonly capacity: number,
  ) {}

  /** Block `k` if kept (and now the most recently used one). */
  get(k: number): DecodedBlock | undefined {
    const b = this.blocks.get(k);
    if (b !== undefined) {
      this.blocks.delete(k);
      this.blocks.set(k, b);
    }
    return b;
  }

  /**
   * Block `k` decoded by `decode` (given a buffer to fill, of `length` bytes), or by the decode of
   * it already in flight; kept once decoded. A failed decode is not kept and fails every joiner.
   */
  decode(k: number, length: number, decode: (into: Uint8Array) => Promise<void>): Promise<DecodedBlock> {
    const kept = this.get(k);
    if (kept !== undefined) return Promise.resolve(kept);
    let p = this.decoding.get(k);
    if (p === undefined) {
      // Always a new buffer: joiners copy out of it after this resolves, when it may be evicted.
      const into = new Uint8Array(length);
      p = decode(into).then(
        () => {
          this.decoding.delete(k);
          this.keep(k, into);
          return into;
        },
        (e: unknown) => {
          this.decoding.delete(k);
          throw e;
        },
      );
      this.decoding.set(k, p);
    }
    return p;
  }

  clear(): void {
    this.blocks.clear();
  }

  private keep(k: number, b: DecodedBlock): void {
    this.blocks.delete(k);
    this.blocks.set(k, b);
    if (this.blocks.size > this.capacity) this.blocks.delete(this.blocks.keys().next().value!);
  }
}
