import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { exitCodeOf } from './exit-code.js';

describe('exitCodeOf', () => {
  it("is the child's code, or 128 + the number of the signal that ended it", () => {
    expect(exitCodeOf(0, null)).toBe(0);
    expect(exitCodeOf(3, null)).toBe(3);
    expect(exitCodeOf(null, 'SIGKILL')).toBe(128 + constants.signals.SIGKILL);
    expect(exitCodeOf(null, 'SIGTERM')).toBe(128 + constants.signals.SIGTERM);
    expect(exitCodeOf(null, null)).toBe(129);
  });
});
