import { DadiError } from '../errors.js';
import { terminalSafe } from '../util/quote.js';
import { formatSize } from '../util/size.js';

// Printing helpers shared by command groups: JSON for scripts, aligned key/value text for people.

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** Print rows of [key, value] aligned on the key column. */
export function printFields(rows: Array<[string, unknown]>, indent = ''): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(terminalSafe(`${indent}${k.padEnd(width)}  ${v}`));
}

export function parseIntOption(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new DadiError('EINVAL', `${name}: "${value}" is not an integer`);
  return n;
}

/** `--stats`: what a read fetched from registries and found in the cache. */
export function printFetchStats(f: { requests: number; bytesFetched: number; cacheHitBytes: number }): void {
  console.error(
    `fetched ${formatSize(f.bytesFetched)} (${f.bytesFetched} bytes) in ${f.requests} requests; ${formatSize(f.cacheHitBytes)} from the cache`,
  );
}
