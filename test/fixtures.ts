// Where the reference fixtures live (../shared/fixtures beside the checkout), if they exist.
// Tests call `fixtures()` and skip with a message when the folder is absent (a user's fresh clone).

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = process.env.DADI_FIXTURES ?? join(root, '..', 'shared', 'fixtures');

/** Absolute path of a fixture file, e.g. fixture('overlaybd-samples/lsmt/l1.lsmt'). */
export function fixture(rel: string): string {
  return join(dir, rel);
}

/** True when the fixtures folder exists; otherwise prints why the caller's tests are skipped. */
export function haveFixtures(what: string): boolean {
  if (existsSync(join(dir, 'overlaybd-samples'))) return true;
  console.warn(`SKIP ${what}: reference fixtures not found at ${dir} (set DADI_FIXTURES)`);
  return false;
}

export const U1 = 'a1b2c3d4-0001-4000-8000-000000000001';
