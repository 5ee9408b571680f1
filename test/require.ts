// Test prerequisites (fixture folders, tools, kernel features, root, opt-outs) decided in one place.
// Outside CI a missing prerequisite skips the tests that need it, printing `SKIP what: why`, and the
// run ends with a summary of every skip (test/skip-summary.ts). With CI set (CI=true), nothing may
// be missing: the file that needs it fails at collection with the same message.
//
//   const HAVE = requireOrSkip('FUSE export tests', missing({ root: true, files: ['/dev/fuse'] }));
//   describe.skipIf(!HAVE)('FUSE export', () => { … });

import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The prefix of skip lines, which the skip summary collects. */
export const SKIP_PREFIX = 'SKIP ';

/** True when the CI variable is set to anything but "", "0" or "false". */
export function inCI(): boolean {
  const v = process.env.CI?.trim().toLowerCase();
  return v !== undefined && v !== '' && v !== '0' && v !== 'false';
}

/**
 * True when nothing is `missing`. Otherwise, in CI, throws (failing the test file); elsewhere prints
 * `SKIP what: missing` and returns false, for `describe.skipIf(!…)`.
 */
export function requireOrSkip(what: string, missing: string | undefined): boolean {
  if (!missing) return true;
  const message = `${what}: ${missing}`;
  if (inCI()) throw new Error(`${message} (CI is set: a missing prerequisite fails instead of skipping)`);
  console.warn(`${SKIP_PREFIX}${message}`);
  return false;
}

export interface Prerequisites {
  /** Needs to run as root. */
  root?: boolean;
  /** Paths that must exist (devices, fixture folders). */
  files?: string[];
  /** Programs that must be on PATH (or in an sbin folder). */
  tools?: string[];
  /** What to install when something is missing, e.g. "apt-get install e2fsprogs". */
  hint?: string;
}

/** What of `p` this machine lacks, as one sentence; undefined when it has everything. */
export function missing(p: Prerequisites): string | undefined {
  const lacks: string[] = [];
  if (p.root && process.getuid?.() !== 0) lacks.push('root');
  for (const f of p.files ?? []) if (!existsSync(f)) lacks.push(f);
  for (const t of p.tools ?? []) if (!onPath(t)) lacks.push(t);
  if (lacks.length === 0) return undefined;
  return `needs ${lacks.join(', ')}${p.hint ? ` (${p.hint})` : ''}`;
}

/** The reason slow tests are off, if the user turned them off with DADI_SKIP_SLOW=1. */
export function slowTestsOff(): string | undefined {
  return process.env.DADI_SKIP_SLOW === '1' ? 'slow tests turned off by DADI_SKIP_SLOW=1' : undefined;
}

function onPath(tool: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  return dirs.some((d) => d !== '' && existsSync(join(d, tool)));
}
