import { describe, expect, it } from 'vitest';
import { KeptClients } from './pull-service.js';

describe('KeptClients', () => {
  it('reuses a client per key and closes an evicted one only after its last user released it', async () => {
    const closed: string[] = [];
    const kept = new KeptClients<string>((c) => {
      closed.push(c);
    });
    const first = kept.acquire('k0', () => 'c0');
    expect(kept.acquire('k0', () => 'other').client).toBe('c0');
    for (let i = 1; i <= 16; i++) kept.acquire(`k${i}`, () => `c${i}`).release();
    await Promise.resolve();
    expect(closed).toEqual([]); // k0 was evicted (17 kept) but two pulls still hold it
    first.release();
    first.release(); // a second release of the same hold changes nothing
    await new Promise((r) => setTimeout(r, 0));
    expect(closed).toEqual([]);
    kept.acquire('k0', () => 'c0-new').release(); // a new client for k0; evicts k1, released: closed
    await new Promise((r) => setTimeout(r, 0));
    expect(closed).toEqual(['c1']);
    await kept.closeAll();
    expect(closed).toHaveLength(17);
  });
});
