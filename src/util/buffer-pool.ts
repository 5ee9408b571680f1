// Reusable same-sized buffers for a process that fills and answers many chunks (the P2P root: its
// answers and its cache's fetches): a fresh 1 MiB buffer per answer left the garbage collector a
// fifth of the root's CPU (node --cpu-prof, bench/scale/agents.ts), and each fresh one page-faults
// its whole length in. A buffer goes back once nobody uses it, and at most `keep` wait there, so
// the pool holds no more memory than a burst already needed.
//
//   const b = pool.take(length);          // length bytes, pooled when length <= size
//   res.once('close', () => pool.give(b));

export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    /** Bytes of each pooled buffer. */
    readonly size: number,
    /** Most buffers kept for reuse. */
    readonly keep: number,
  ) {}

  /** A buffer of `length` bytes (a view of a pooled one when it fits, else a new one). */
  take(length: number): Buffer {
    if (length > this.size) return Buffer.allocUnsafe(length);
    // Slow: a buffer of its own, never a slice of Node's shared pool.
    const b = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    return b.subarray(0, length);
  }

  /** `b` (from `take`) is no longer used by anyone. */
  give(b: Buffer): void {
    if (b.buffer.byteLength !== this.size || b.byteOffset !== 0 || this.free.length >= this.keep) return;
    this.free.push(Buffer.from(b.buffer, 0, this.size));
  }

  /** Buffers waiting for reuse. */
  get idle(): number {
    return this.free.length;
  }
}
