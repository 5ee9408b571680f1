// Connections opened ahead of the requests that will use them: a cold start's registry reads come
// in bursts of parallel range GETs (the layers' headers, then the inode tables, the launch files),
// and each new connection costs a round trip (the TCP handshake, two more with TLS) before its
// first request. A caller that knows a burst is coming (the daemon, as it starts resolving an
// image) opens a few sockets while its first request is in flight; the pool's connector then hands
// them out before connecting anew. Spares unclaimed after a while are closed. Not the pool itself
// (undici's) nor what to read.

import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';

/** Spares not taken within this time are closed (a registry may drop idle connections). */
export const SPARE_IDLE_MS = 10_000;

/** A connector for one origin's pool that hands out sockets opened by `open` first. */
export class SpareSockets {
  private readonly spare: Socket[] = [];
  private opening = 0;

  constructor(
    /** The connector undici would use (its TLS options included). */
    private readonly base: buildConnector.connector,
    private readonly idleMs = SPARE_IDLE_MS,
  ) {}

  /** The pool's `connect` option: a spare socket when one is open, else a new connection. */
  readonly connect: buildConnector.connector = (opts, callback) => {
    for (let s = this.spare.shift(); s; s = this.spare.shift()) {
      if (!s.destroyed && s.readyState === 'open') {
        s.removeAllListeners('error');
        s.removeAllListeners('close');
        s.ref();
        // As undici's own connector does: the callback never runs inside the connect call.
        process.nextTick(callback, null, s);
        return;
      }
    }
    this.base(opts, callback);
  };

  /** Spare sockets open or opening. */
  get count(): number {
    return this.spare.length + this.opening;
  }

  /** Open sockets until `n` are spare or opening (errors only drop the spare: requests connect anew). */
  open(origin: string, n: number): void {
    const u = new URL(origin);
    const opts: buildConnector.Options = {
      hostname: u.hostname,
      host: u.host,
      protocol: u.protocol,
      port: u.port || (u.protocol === 'https:' ? '443' : '80'),
      servername: u.protocol === 'https:' ? u.hostname : undefined,
    };
    for (let i = this.count; i < n; i++) {
      this.opening++;
      this.base(opts, (err, socket) => {
        this.opening--;
        if (err || !socket) return;
        // Only while spare: once handed out, the socket is the pool's.
        const drop = () => {
          const at = this.spare.indexOf(socket);
          if (at < 0) return;
          this.spare.splice(at, 1);
          socket.destroy();
        };
        socket.on('error', drop);
        socket.on('close', drop);
        // Not kept alive for this: an unclaimed spare does not hold the process open.
        socket.unref();
        setTimeout(drop, this.idleMs).unref();
        this.spare.push(socket);
      });
    }
  }

  /** Close every spare. */
  close(): void {
    for (const s of this.spare.splice(0)) s.destroy();
  }
}
