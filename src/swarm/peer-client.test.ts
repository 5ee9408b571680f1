// A connection that closes under a request before any answer (the other side closing an idle
// keep-alive socket just as the request goes out) is not a dead host: the request goes once more
// on a new connection. A host that closes every connection still fails, after exactly two.

import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { getRange, PeerError, postJson } from './peer-client.js';

const BODY = Buffer.from('0123456789abcdef');

/** A raw HTTP server: connections before `closeFirst` are closed once a request arrives; later ones answer. */
async function server(
  closeFirst: number,
): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets: Socket[] = [];
  const srv: Server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    const closing = n++ < closeFirst;
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      if (closing) return void s.destroy();
      const post = got.startsWith('POST');
      const body = post ? Buffer.from('{"ok":true}') : BODY.subarray(2, 6);
      const head = post
        ? 'HTTP/1.1 200 OK\r\ncontent-type: application/json'
        : `HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 2-5/${BODY.length}`;
      s.end(`${head}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString('latin1')}`);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => n,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

describe('peer client on connections closed under a request', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('sends a GET once more on a new connection when the first closed before any answer', async () => {
    const s = await server(1);
    close = s.close;
    const a = await getRange(`${s.url}/blob`, 2, 4, {}, 2000);
    expect(a.bytes.toString()).toBe('2345');
    expect(s.connections()).toBe(2);
  });

  it('sends a POST once more the same way', async () => {
    const s = await server(1);
    close = s.close;
    expect(await postJson(`${s.url}/join`, {}, {}, 2000)).toEqual({ ok: true });
    expect(s.connections()).toBe(2);
  });

  it('fails as unreachable when the new connection closes too, after two connections', async () => {
    const s = await server(Number.POSITIVE_INFINITY);
    close = s.close;
    const e = await getRange(`${s.url}/blob`, 2, 4, {}, 2000).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PeerError);
    expect((e as PeerError).why).toBe('unreachable');
    expect(s.connections()).toBe(2);
  });

  it('does not retry a refused connection or a timeout', async () => {
    const s = await server(0);
    const url = s.url;
    await s.close();
    const refused = await getRange(`${url}/blob`, 2, 4, {}, 2000).catch((x: unknown) => x);
    expect((refused as PeerError).why).toBe('unreachable');
    // A server that accepts and never answers: one connection, 'timeout'.
    let n = 0;
    const sockets: Socket[] = [];
    const mute = createServer((x) => {
      n++;
      sockets.push(x);
      x.on('error', () => {});
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    close = async () => {
      for (const x of sockets) x.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    };
    const { port } = mute.address() as { port: number };
    const slow = await getRange(`http://127.0.0.1:${port}/blob`, 2, 4, {}, 300).catch((x: unknown) => x);
    expect((slow as PeerError).why).toBe('timeout');
    expect(n).toBe(1);
  });
});
