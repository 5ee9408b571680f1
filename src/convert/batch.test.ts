import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { batchConcurrency, IMAGE_MEMORY_ESTIMATE, parseBatchList } from './batch.js';

describe('several-image convert: list and concurrency', () => {
  it('reads SRC DST and SRC=DST lines, skipping comments and blank lines', () => {
    const text = '# images\nreg/a:v1 reg/a:obd\n\n  reg/b:v1=reg/b:obd  # shares a\n';
    expect(parseBatchList(text, 'list')).toEqual([
      { source: 'reg/a:v1', target: 'reg/a:obd' },
      { source: 'reg/b:v1', target: 'reg/b:obd' },
    ]);
  });

  it('a malformed line is refused naming the file and line', () => {
    expect(() => parseBatchList('reg/a:v1 reg/a:obd\nreg/b:v1\n', 'images.txt')).toThrow(DadiError);
    expect(() => parseBatchList('reg/a:v1 reg/a:obd\nreg/b:v1\n', 'images.txt')).toThrow(/^images\.txt:2: /);
    expect(() => parseBatchList('a=b=c\n', 'l')).toThrow(/^l:1: /);
  });

  it('the memory budget caps --jobs; never below one image at a time', () => {
    expect(batchConcurrency(4, 10 * IMAGE_MEMORY_ESTIMATE)).toBe(4);
    expect(batchConcurrency(4, 2 * IMAGE_MEMORY_ESTIMATE + 1)).toBe(2);
    expect(batchConcurrency(4, IMAGE_MEMORY_ESTIMATE - 1)).toBe(1);
    expect(batchConcurrency(1, 100 * IMAGE_MEMORY_ESTIMATE)).toBe(1);
  });
});
