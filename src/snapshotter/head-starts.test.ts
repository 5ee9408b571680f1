import { describe, expect, it } from 'vitest';
import { HeadStarts } from './head-starts.js';

describe('HeadStarts', () => {
  it('gives the resolve started for a key to its first taker only, and starts one per key', async () => {
    const ahead = new HeadStarts<Promise<string>>();
    let calls = 0;
    ahead.start('a', async () => `a${++calls}`);
    ahead.start('a', async () => `a${++calls}`); // one is waiting already
    expect(calls).toBe(1);
    expect(ahead.take('b')).toBeUndefined();
    expect(await ahead.take('a')).toBe('a1');
    expect(ahead.take('a')).toBeUndefined();
    ahead.start('a', async () => `a${++calls}`);
    expect(await ahead.take('a')).toBe('a2');
  });

  it('drops a resolve nobody took in time, and the oldest beyond eight', async () => {
    const ahead = new HeadStarts<Promise<number>>(20);
    ahead.start('old', async () => 1);
    await new Promise((r) => setTimeout(r, 40));
    expect(ahead.take('old')).toBeUndefined();
    const many = new HeadStarts<Promise<number>>();
    for (let i = 0; i < 10; i++) many.start(`k${i}`, async () => i);
    expect(many.size).toBe(8);
    expect(many.take('k0')).toBeUndefined();
    expect(await many.take('k9')).toBe(9);
  });

  it("keeps a failed resolve's error for its taker", async () => {
    const ahead = new HeadStarts<Promise<number>>();
    ahead.start('bad', () => {
      const p = Promise.reject(new Error('no such tag'));
      p.catch(() => {});
      return p;
    });
    await new Promise((r) => setTimeout(r, 5));
    await expect(ahead.take('bad')).rejects.toThrow('no such tag');
  });
});
