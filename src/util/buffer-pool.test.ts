import { describe, expect, it } from 'vitest';
import { BufferPool } from './buffer-pool.js';

describe('BufferPool', () => {
  it('hands a returned buffer out again, as a view of the asked length', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take(1000);
    expect(a.length).toBe(1000);
    a.fill(7);
    pool.give(a);
    expect(pool.idle).toBe(1);
    const b = pool.take(10);
    expect(b.length).toBe(10);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.idle).toBe(0);
  });

  it('never pools a buffer larger than its size, and keeps at most `keep`', () => {
    const pool = new BufferPool(64, 2);
    const big = pool.take(65);
    expect(big.length).toBe(65);
    pool.give(big);
    expect(pool.idle).toBe(0);
    const taken = [pool.take(64), pool.take(64), pool.take(64)];
    for (const t of taken) pool.give(t);
    expect(pool.idle).toBe(2);
  });

  it('does not take buffers it did not make (another size, or a view into the middle)', () => {
    const pool = new BufferPool(64, 4);
    pool.give(Buffer.alloc(32));
    pool.give(pool.take(64).subarray(8));
    expect(pool.idle).toBe(0);
  });
});
