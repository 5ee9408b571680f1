// Process locks that the kernel releases: a lock is a listening unix socket in Linux's abstract
// namespace, named after what it guards. Binding is atomic (a second bind fails with EADDRINUSE)
// and the name disappears when its holder exits or is killed, so there is no stale lock to detect
// or remove, and no window in which a half-written lock file looks abandoned. Linux only, and per
// network namespace (every process sharing a state folder must share the namespace). Two holders
// in one process exclude each other too. Not a file lock: it guards no data, only who may act.
//
// @example
//   const lock = await ProcessLock.tryAcquire(`daemon ${stateRoot}`);
//   if (!lock) throw new DadiError('EEXIST', 'another daemon owns this state folder');
//   try { … } finally { await lock.release(); }
//
// A holder may leave a short note (who it is) that others read with `holder()`, for messages.

import { createHash } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';

/** The abstract socket name of a lock: a NUL byte, then a fixed prefix and a digest of `key`. */
function socketName(key: string): string {
  return `\0dadi-lock-${createHash('sha256').update(key).digest('hex')}`;
}

export class ProcessLock {
  private constructor(
    readonly key: string,
    private readonly server: Server,
  ) {}

  /**
   * Take the lock named `key`, or undefined when another process (or holder) has it. `about`
   * (a line of text: who holds it) is what `holder()` tells others.
   */
  static tryAcquire(key: string, about = ''): Promise<ProcessLock | undefined> {
    return new Promise((resolve, reject) => {
      // A connection gets the note and is closed: it only tells the prober who holds the lock.
      const server = createServer((sock) => {
        sock.on('error', () => {});
        sock.end(about);
      });
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') resolve(undefined);
        else reject(e);
      });
      server.listen(socketName(key), () => {
        server.unref(); // holding a lock must not keep the process alive
        resolve(new ProcessLock(key, server));
      });
    });
  }

  /** True when some process holds the lock named `key`. */
  static isHeld(key: string): Promise<boolean> {
    return new Promise((resolve) => {
      const c = connect(socketName(key));
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
  }

  /** The note of the process holding `key` ('' when it left none), or undefined when it is free. */
  static holder(key: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      const c = connect(socketName(key));
      let note = '';
      c.setEncoding('utf8');
      c.setTimeout(2000, () => c.destroy());
      c.on('data', (d: string) => {
        if (note.length < 4096) note += d;
      });
      c.once('end', () => resolve(note));
      c.once('close', () => resolve(note));
      c.once('error', () => resolve(undefined));
    });
  }

  /** Give the lock up (harmless twice). */
  release(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }
}
