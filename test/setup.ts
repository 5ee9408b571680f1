// Loaded before every test file (vitest `setupFiles`): seeds fast-check from TEST_SEED and names
// the seed when a test fails, so a failure of any randomised test can be replayed exactly.

import fc from 'fast-check';
import { beforeEach } from 'vitest';
import { TEST_SEED } from './seed.js';

fc.configureGlobal({ seed: TEST_SEED });

beforeEach((ctx) => {
  ctx.onTestFailed(() => {
    console.error(`${ctx.task.name}: failed with DADI_TEST_SEED=${TEST_SEED}`);
  });
});

// Daemons that tests start pull no layers in the background unless a test asks (DADI_PULL=on):
// a pull would add registry bytes to the counts tests make of what a start fetches.
process.env.DADI_PULL ??= 'off';
