// A child's exit as a shell reports it: its code, or 128 + the number of the signal that ended it.

import { constants } from 'node:os';

/** `code` when the child exited, else 128 + the signal's number (129 for a signal node cannot name). */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? ((constants.signals as Record<string, number>)[signal] ?? 1) : 1);
}
