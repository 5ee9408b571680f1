// Resolves started ahead of the pulls that use them (the CLI's hint: cli/pull-hint.ts), kept by
// the pull's settings for a few seconds. A pull takes the one made for its own settings, at most
// once; one nobody takes in time is dropped (its result was a head start, never an obligation).

/** How long a resolve started ahead waits for its pull (the CLI's hint comes ~10 ms before it). */
export const AHEAD_TTL_MS = 3000;
/** Resolves kept at once: hints for pulls that never came are dropped beyond this. */
const MAX_AHEAD = 8;

export class ResolveAhead<T> {
  private readonly entries = new Map<string, { value: Promise<T>; at: number }>();

  constructor(private readonly ttlMs = AHEAD_TTL_MS) {}

  /**
   * Start `resolve` for `key` unless one started for it is still waiting; its failure is the
   * taker's to see (nothing is reported here).
   */
  start(key: string, resolve: () => Promise<T>): void {
    this.dropStale();
    if (this.entries.has(key)) return;
    const value = resolve();
    value.catch(() => {});
    this.entries.set(key, { value, at: performance.now() });
    if (this.entries.size > MAX_AHEAD) this.entries.delete(this.entries.keys().next().value!);
  }

  /** The resolve started ahead for `key`, removed (a later pull resolves anew); undefined if none. */
  take(key: string): Promise<T> | undefined {
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
