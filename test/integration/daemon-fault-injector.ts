// Preloaded (node --import) into a `dadi daemon` by daemon-faults.test.ts: on SIGUSR2 it makes the
// fault named in the file $DADI_TEST_FAULT_FILE, as a bug elsewhere in the process would:
// `reject` leaves a promise rejection unhandled, `throw` throws from a callback nobody catches.

import { readFileSync } from 'node:fs';
import { DadiError } from '../../src/errors.js';

process.on('SIGUSR2', () => {
  const fault = readFileSync(process.env.DADI_TEST_FAULT_FILE!, 'utf8').trim();
  if (fault === 'reject') void Promise.reject(new DadiError('EIO', 'a stray rejection the test made'));
  if (fault === 'throw') {
    setImmediate(() => {
      throw new TypeError('a stray exception the test made');
    });
  }
});
