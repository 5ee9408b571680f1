// A pass-through async iterable that sees every chunk once. Convert hashes a layer's decompressed
// tar this way while the ext4 writer consumes it, then drains what the writer left (the tar's end
// padding) so the hash covers the whole stream.

/** Its consumer stopping early does not close the source: `drain()` or `close()` decides. */
export class Tap implements AsyncIterable<Uint8Array> {
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly onChunk: (c: Uint8Array) => void,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async () => {
        const r = await this.it.next();
        if (!r.done) this.onChunk(r.value);
        return r;
      },
      return: async () => ({ done: true, value: undefined }),
    };
  }

  /** Read (and see) whatever the consumer left. */
  async drain(): Promise<void> {
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      this.onChunk(r.value);
    }
  }

  /** Stop the source (its `return()`), ignoring its errors. */
  async close(): Promise<void> {
    await this.it.return?.().catch(() => undefined);
  }
}
