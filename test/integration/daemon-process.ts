// For tests that run `dadi daemon` as a process: wait for a condition, read its JSON log file.

import { readFile } from 'node:fs/promises';

export type LogLine = { level: string; msg: string; [k: string]: unknown };

/** Poll `cond` every 50 ms until it holds; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The lines of the daemon's JSON log at `path` so far (none before it exists). */
export async function readJsonLog(path: string): Promise<LogLine[]> {
  return (await readFile(path, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}
