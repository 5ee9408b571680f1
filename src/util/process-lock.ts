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

import { connect, createServer, type Server } from 'node:net';

/**
 * The abstract socket name of a lock: a NUL byte, then a fixed prefix and a digest of `key`.
 * node:crypto loads only here: `dadi run` imports this module and, with a daemon up, takes no lock
 * (loading crypto costs it ~6 ms of its start).
 */
async function socketName(key: string): Promise<string> {
  const { createHash } = await import('node:crypto');
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
  static async tryAcquire(key: string, about = ''): Promise<ProcessLock | undefined> {
    const name = await socketName(key);
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
      server.listen(name, () => {
        server.unref(); // holding a lock must not keep the process alive
        resolve(new ProcessLock(key, server));
      });
    });
  }

  /** True when some process holds the lock named `key`. */
  static async isHeld(key: string): Promise<boolean> {
    const name = await socketName(key);
    return new Promise((resolve) => {
      const c = connect(name);
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
  }

  /** The note of the process holding `key` ('' when it left none), or undefined when it is free. */
  static async holder(key: string): Promise<string | undefined> {
    const name = await socketName(key);
    return new Promise((resolve) => {
      const c = connect(name);
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
