import { describe, expect, it } from 'vitest';
import { Tap } from './tap.js';

async function* chunks(n: number, log: string[]): AsyncGenerator<Uint8Array> {
  try {
    for (let i = 0; i < n; i++) yield Uint8Array.of(i);
  } finally {
    log.push('source closed');
  }
}

describe('Tap', () => {
  it('sees every chunk once: those the consumer read, then those drain() reads', async () => {
    const log: string[] = [];
    const seen: number[] = [];
    const tap = new Tap(chunks(5, log), (c) => seen.push(c[0]!));
    for await (const c of tap) if (c[0] === 1) break; // the consumer stops early…
    expect(seen).toEqual([0, 1]);
    expect(log).toEqual([]); // …without closing the source
    await tap.drain();
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(log).toEqual(['source closed']);
  });

  it('close() stops the source', async () => {
    const log: string[] = [];
    const seen: number[] = [];
    const tap = new Tap(chunks(5, log), (c) => seen.push(c[0]!));
    for await (const _ of tap) break;
    await tap.close();
    expect(log).toEqual(['source closed']);
    expect(seen).toEqual([0]);
  });
});
