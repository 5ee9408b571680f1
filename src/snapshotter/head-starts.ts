// What was started ahead of the pulls that use it (the CLI's hint: cli/pull-hint.ts), kept by the
// pull's settings for a few seconds. A pull takes what was started for its own settings, at most
// once; what nobody takes in time is dropped (a head start, never an obligation).

/** How long what was started ahead waits for its pull (the CLI's hint comes ~10 ms before it). */
export const HEAD_START_TTL_MS = 3000;
/** Entries kept at once: hints for pulls that never came are dropped beyond this. */
const MAX_HEAD_STARTS = 8;

export class HeadStarts<T> {
  private readonly entries = new Map<string, { value: T; at: number }>();

  constructor(private readonly ttlMs = HEAD_START_TTL_MS) {}

  /**
   * Start `make` for `key` unless what was started for it is still waiting. Its promises' failures
   * are the taker's to see: `make` keeps them from going unhandled meanwhile.
   */
  start(key: string, make: () => T): void {
    this.dropStale();
    if (this.entries.has(key)) return;
    this.entries.set(key, { value: make(), at: performance.now() });
    if (this.entries.size > MAX_HEAD_STARTS) this.entries.delete(this.entries.keys().next().value!);
  }

  /** What was started for `key`, removed (a later pull starts anew); undefined if nothing waits. */
  take(key: string): T | undefined {
    this.dropStale();
    const e = this.entries.get(key);
    this.entries.delete(key);
    return e?.value;
  }

  get size(): number {
    return this.entries.size;
  }

  private dropStale(): void {
    const now = performance.now();
    for (const [k, e] of this.entries) if (now - e.at > this.ttlMs) this.entries.delete(k);
  }
}
