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

  /** Take the lock named `key`, or undefined when another process (or holder) has it. */
  static tryAcquire(key: string): Promise<ProcessLock | undefined> {
    return new Promise((resolve, reject) => {
      // Answers nothing: a connection only tells the prober that the lock is held.
      const server = createServer((sock) => sock.destroy());
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

  /** Give the lock up (harmless twice). */
  release(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }
}

/** The lock a running daemon holds on its state folder for its whole life. */
export function daemonLockKey(stateRoot: string): string {
  return `daemon ${stateRoot}`;
}

/** The lock a client holds while it starts a daemon for a state folder. */
export function startLockKey(stateRoot: string): string {
  return `start ${stateRoot}`;
}
