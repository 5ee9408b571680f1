// Exact-length reads from a socket (the NBD framing layer), with backpressure: the socket is paused
// while more than `highWater` bytes sit unread. Not a general stream library.

import type { Socket } from 'node:net';

export class SocketReader {
  private chunks: Buffer[] = [];
  private avail = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly highWater = 64 << 20,
  ) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.avail += d.length;
      if (this.avail > this.highWater) socket.pause();
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (e) => {
      this.failure = e;
      this.wake();
    });
  }

  /** Resolves with exactly `n` bytes, or rejects when the peer closes first. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('concurrent read on an NBD socket'));
    if (this.avail >= n) return Promise.resolve(this.take(n));
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.avail >= w.n) {
      this.waiter = undefined;
      w.resolve(this.take(w.n));
    } else if (this.failure || this.ended) {
      this.waiter = undefined;
      w.reject(this.failure ?? new EndOfStream());
    }
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let p = 0;
      while (p < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - p);
        c.copy(out, p, 0, k);
        p += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.avail -= n;
    if (this.avail <= this.highWater && this.socket.isPaused()) this.socket.resume();
    return out;
  }
}

/** The peer closed the connection (normal at the end of a session). */
export class EndOfStream extends Error {
  constructor() {
    super('connection closed by peer');
    this.name = 'EndOfStream';
  }
}

const drains = new WeakMap<Socket, Promise<void>>();

/** Write and wait for the socket to accept more (honours backpressure); never rejects. */
export function writeAll(socket: Socket, ...bufs: Uint8Array[]): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  if (bufs.length > 1) socket.cork();
  let ok = true;
  for (const b of bufs) ok = socket.write(b) && ok;
  if (bufs.length > 1) socket.uncork();
  if (ok) return Promise.resolve();
  // One shared waiter per socket, however many writers are waiting.
  let p = drains.get(socket);
  if (!p) {
    p = new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        drains.delete(socket);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
    drains.set(socket, p);
  }
  return p;
}
