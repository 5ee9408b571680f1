// The client's side of streamed answers (protocol.ts data frames): bytes arrive in order whatever
// way the socket splits frames, a slow consumer holds the stream back without losing bytes, and an
// error after some frames reaches the caller as a DadiError with the daemon's code and message.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { patternBytes } from '../cache/testing.js';
import { DadiError } from '../errors.js';
import { sendRequest } from './client.js';

describe('sendRequest with data frames', () => {
  let dir: string;
  let server: Server | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-frames-'));
  });
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  /** A server that answers every connection with `wire`, written in pieces of `piece` bytes. */
  async function serveWire(wire: Buffer, piece: number): Promise<string> {
    const socket = join(dir, 's.sock');
    server = createServer((c) => {
      c.once('data', async () => {
        for (let o = 0; o < wire.length; o += piece) {
          c.write(wire.subarray(o, o + piece));
          await new Promise((r) => setImmediate(r));
        }
        c.end();
      });
    });
    await new Promise<void>((r) => server!.listen(socket, () => r()));
    return socket;
  }

  const frames = (chunks: Buffer[], last: object) =>
    Buffer.concat([
      ...chunks.flatMap((c) => [Buffer.from(`{"data":${c.length}}\n`), c]),
      Buffer.from(`${JSON.stringify(last)}\n`),
    ]);

  it('hands every byte over in order, for any split, to a slow consumer', async () => {
    // Chunks holding newlines and brace bytes, so that a frame is never mistaken for a line.
    const chunks = [patternBytes(7_000, 3), Buffer.from('{"data":5}\n\n'), patternBytes(1, 4), patternBytes(20_000, 5)];
    for (const piece of [5, 4096, 1 << 20]) {
      const socket = await serveWire(frames(chunks, { ok: true, result: { done: piece } }), piece);
      const got: Buffer[] = [];
      const result = await sendRequest(socket, { op: 'ping' }, 10_000, async (c) => {
        got.push(Buffer.from(c));
        await new Promise((r) => setTimeout(r, got.length % 50 === 0 ? 5 : 0));
      });
      expect(result).toEqual({ done: piece });
      expect(Buffer.concat(got).equals(Buffer.concat(chunks))).toBe(true);
      await new Promise<void>((r) => server!.close(() => r()));
      server = undefined;
      await rm(socket, { force: true });
    }
  });

  it("an error after some frames rejects with the daemon's code and message", async () => {
    const socket = await serveWire(
      frames([Buffer.from('partial')], {
        ok: false,
        error: { code: 'ENOTFOUND', message: 'reg/app:v1: "/x": not found' },
      }),
      3,
    );
    const got: Buffer[] = [];
    const err = await sendRequest(socket, { op: 'ping' }, 10_000, (c) => got.push(Buffer.from(c))).catch((e) => e);
    expect(err).toBeInstanceOf(DadiError);
    expect(err).toMatchObject({ code: 'ENOTFOUND', message: 'reg/app:v1: "/x": not found' });
    expect(Buffer.concat(got).toString()).toBe('partial');
  });
});
