// The BlockFile interfaces: every stage of the read path (cache, tar view, ZFile, LSMT layer,
// merged stack, writable layer) is a BlockFile wrapping another. Not for streaming output; see sink.ts.
//
// Offsets and sizes are bytes as `number` (exact below 2^53 = 8 PiB, far above any disk we serve).

/**
 * A read-only file of known size with positional reads.
 *
 * The contract every implementation keeps (checked by conformance.ts against each of them):
 * - `read` fills `buf` from `offset` and returns min(buf.length, max(0, size - offset)): short only
 *   at the end, 0 at or past the end (at any offset up to 2^53 - 1) and for an empty `buf`.
 * - An offset that is not a non-negative safe integer rejects with DadiError ERANGE.
 * - Reads may run concurrently; each returns what it would alone.
 * - `close` is idempotent. After it, `read` rejects with DadiError EINVAL (never stale bytes).
 * - Errors are rejections (DadiError), never synchronous throws.
 */
export interface BlockFile {
  /** A name for error messages: a path, a ref, or "<stage> of <inner name>". */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /**
   * Read into `buf` starting at `offset`; fills as much of `buf` as the file has.
   * Returns the byte count, short only at end of file (0 at or past the end).
   */
  read(buf: Uint8Array, offset: number): Promise<number>;
  /** Release resources. Closing twice is harmless. */
  close(): Promise<void>;
}

/**
 * A BlockFile that can bring a range close (into a cache below it) without handing its bytes back:
 * no copy, no decode. Advice only: what it fetched is read later through `read`, which still
 * checks it (e.g. a ZFile block's CRC).
 */
export interface PrefetchableBlockFile extends BlockFile {
  /** Fetch [offset, offset+length) (clipped to the file) into the cache; resolves once it is there. */
  prefetch(offset: number, length: number): Promise<void>;
}

/** A BlockFile that also takes writes. */
export interface WritableBlockFile extends BlockFile {
  /** Write `buf` at `offset`; may grow `size`. */
  write(buf: Uint8Array, offset: number): Promise<void>;
  /** Make [offset, offset+length) read as zeros and release its storage where possible. */
  discard(offset: number, length: number): Promise<void>;
  /** Make written data durable. */
  flush(): Promise<void>;
}

/** A block device whose allocation is known: lets exporters keep holes as holes. */
export interface ExtentSource {
  /**
   * The data extents (sorted, non-overlapping, [offset, offset+length)) within [offset, offset+length).
   * Anything outside them reads as zeros.
   */
  extents(offset: number, length: number): AsyncIterable<{ offset: number; length: number }>;
}

export function hasExtents(f: BlockFile): f is BlockFile & ExtentSource {
  return typeof (f as Partial<ExtentSource>).extents === 'function';
}

export function isWritable(f: BlockFile): f is WritableBlockFile {
  return typeof (f as Partial<WritableBlockFile>).write === 'function';
}
