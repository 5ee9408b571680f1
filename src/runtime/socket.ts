// Whether a daemon answers on a unix socket (shared by the daemon and its light client).

import { existsSync } from 'node:fs';
import { connect } from 'node:net';

/** True when something accepts connections on `socket`. */
export function socketAnswers(socket: string): Promise<boolean> {
  return new Promise((res) => {
    if (!existsSync(socket)) return res(false);
    const c = connect(socket);
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}
