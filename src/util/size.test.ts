import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from './size.js';

describe('parseSize', () => {
  it('parses plain numbers and binary suffixes', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('64G')).toBe(64 * 2 ** 30);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('512k')).toBe(512 * 1024);
  });
  it('rejects garbage with a message naming the input', () => {
    expect(() => parseSize('12X', '--size')).toThrow(/--size.*12X/);
    expect(() => parseSize('-1')).toThrow();
  });
  it('formats', () => {
    expect(formatSize(64 * 2 ** 30)).toBe('64 GiB');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(10)).toBe('10 B');
  });
});
