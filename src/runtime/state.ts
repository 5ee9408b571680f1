// Where the host runtime keeps its state: one folder (default /run/dadi, or $DADI_STATE) holding the
// daemon's socket, pid file and log, one private folder per device (FUSE mount point) and per
// container (writable layer, bundle, rootfs mount point), and runc's own state. Paths only, no I/O.

import { join, resolve } from 'node:path';
import { DadiError } from '../errors.js';

export const DEFAULT_STATE_DIR = '/run/dadi';

/** The state folder: the argument, else $DADI_STATE, else /run/dadi (always absolute). */
export function resolveStateDir(stateDir?: string): string {
  return resolve(stateDir ?? process.env.DADI_STATE ?? DEFAULT_STATE_DIR);
}

/** Every path the runtime uses under one state folder. */
export function statePaths(stateDir?: string) {
  const root = resolveStateDir(stateDir);
  return {
    root,
    socket: join(root, 'dadi.sock'),
    pidFile: join(root, 'daemon.pid'),
    log: join(root, 'daemon.log'),
    /** Per-device private folders: `<devices>/<id>/fuse` is the FUSE mount point. */
    devices: join(root, 'devices'),
    /** `<containers>/<name>.json` records, `<containers>/<name>/` folders. */
    containers: join(root, 'containers'),
    /** runc's `--root`. */
    runc: join(root, 'runc'),
    /** Auto-trace's store: traces recorded on this host, by manifest digest. */
    traces: join(root, 'traces'),
  };
}

export type StatePaths = ReturnType<typeof statePaths>;

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Container names become folder names, runc ids and cgroup names: keep them tame. */
export function checkName(name: string, what = 'container name'): string {
  if (!NAME_RE.test(name)) {
    throw new DadiError('EINVAL', `${what} ${JSON.stringify(name)}: use letters, digits, '_', '.', '-' (max 128)`);
  }
  return name;
}
