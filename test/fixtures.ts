// Where the reference fixtures live (../shared/fixtures beside the checkout), if they exist.
// Tests call `haveFixtures()`: when the folder is absent (a user's fresh clone) they skip with a
// message, or fail when CI is set (see require.ts).

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireOrSkip } from './require.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = process.env.DADI_FIXTURES ?? join(root, '..', 'shared', 'fixtures');

/** Absolute path of a fixture file, e.g. fixture('overlaybd-samples/lsmt/l1.lsmt'). */
export function fixture(rel: string): string {
  return join(dir, rel);
}

/** True when the fixtures folder exists; otherwise skips (or, in CI, fails) the caller's tests. */
export function haveFixtures(what: string): boolean {
  const absent = !existsSync(join(dir, 'overlaybd-samples'));
  return requireOrSkip(what, absent ? `reference fixtures not found at ${dir} (set DADI_FIXTURES)` : undefined);
}

export const U1 = 'a1b2c3d4-0001-4000-8000-000000000001';
