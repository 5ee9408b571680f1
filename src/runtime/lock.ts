// The daemon's process locks (util/process-lock.ts): one on its state folder for its whole life,
// one a client holds while it starts a daemon.

export { ProcessLock } from '../util/process-lock.js';

/** The lock a running daemon holds on its state folder for its whole life. */
export function daemonLockKey(stateRoot: string): string {
  return `daemon ${stateRoot}`;
}

/** The lock a client holds while it starts a daemon for a state folder. */
export function startLockKey(stateRoot: string): string {
  return `start ${stateRoot}`;
}
