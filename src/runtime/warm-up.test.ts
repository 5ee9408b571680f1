// The daemon's warm-up (warm-up.ts): a traced and a cold start of its own tiny DADI image, built with
// our writers and served from a loopback registry stand-in, read through a temp block cache that is
// gone afterwards; it stops at once, cleaning up, when told a client wants work.

import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { warmStartPath } from './warm-up.js';

/** The warm-up's temp folders now present (it prefers /dev/shm). */
async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ['/dev/shm', tmpdir()]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    out.push(...names.filter((n) => n.startsWith('dadi-warm-up-')).map((n) => `${dir}/${n}`));
  }
  return out;
}

describe('warmStartPath', () => {
  it('runs every step against its own registry and leaves nothing behind', async () => {
    const before = await leftovers();
    const logs: string[] = [];
    const r = await warmStartPath({ log: (m) => logs.push(m) });
    expect(logs).toEqual([]);
    expect(r.completed).toBe(true);
    expect(r.steps.map((s) => s.step)).toEqual(['image', 'context', 'resolve', 'traced start', 'cold start']);
    // Two resolves (manifest, config), the layer's head/tail/data and the trace, twice over.
    expect(r.requests).toBeGreaterThanOrEqual(10);
    expect(await leftovers()).toEqual(before);
  }, 60_000);

  it('never starts when a client already asked for work', async () => {
    const r = await warmStartPath({ signal: AbortSignal.abort() });
    expect(r).toMatchObject({ completed: false, stopped: 'client', requests: 0 });
  });

  it('stops at the next step once told, and cleans up', async () => {
    const before = await leftovers();
    const client = new AbortController();
    const seen: string[] = [];
    const r = await warmStartPath({
      signal: client.signal,
      onStep: (s) => {
        seen.push(s);
        if (s === 'resolve') client.abort();
      },
    });
    expect(r.completed).toBe(false);
    expect(r.stopped).toBe('client');
    expect(seen).toEqual(['image', 'context', 'resolve']);
    expect(r.steps.map((s) => s.step)).toEqual(['image', 'context', 'resolve', 'stopped']);
    expect(await leftovers()).toEqual(before);
  }, 60_000);

  it('stopped at any point, leaves nothing running or behind', async () => {
    const before = await leftovers();
    const unhandled: unknown[] = [];
    const note = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', note);
    try {
      // Wherever the stop lands: building, resolving, opening, replaying, reading.
      for (const ms of [0, 5, 15, 30, 50, 80, 120]) {
        const client = new AbortController();
        const t = setTimeout(() => client.abort('client'), ms);
        const r = await warmStartPath({ signal: client.signal });
        clearTimeout(t);
        if (!r.completed) expect(r.stopped).toBe('client');
      }
      // Late rejections of work cut off by the stop would surface by now.
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      process.off('unhandledRejection', note);
    }
    expect(unhandled).toEqual([]);
    expect(await leftovers()).toEqual(before);
  }, 60_000);

  it('gives up after its time bound', async () => {
    const r = await warmStartPath({ timeoutMs: 0 });
    expect(r.completed).toBe(false);
    expect(r.stopped).toBe('timeout');
  });
});
