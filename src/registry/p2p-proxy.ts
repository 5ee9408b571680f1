// The overlaybd P2P proxy URL form (overlaybd-formats §9): a blob GET for `<upstream URL>` is sent
// to `<proxy address>/<upstream URL>`, with its Range and Authorization headers kept, so a DADI
// P2P agent (ours, dadi-p2proxy's `http://host:19145/dadip2p`) or a Dragonfly dfdaemon serves it.
// Only the URL rules; the transport decides which requests take it.

import { DadiError } from '../errors.js';

/** Where the setting comes from when no option gives it. */
export const P2P_PROXY_ENV = 'DADI_P2P_PROXY';

/**
 * Check a proxy address (`http[s]://host:port[/prefix]`) and return it without trailing slashes;
 * undefined for an empty setting. `source` (a flag or variable name) starts the error message.
 * @example parseP2pProxy('http://127.0.0.1:19145/dadip2p/', '--p2p-proxy') === 'http://127.0.0.1:19145/dadip2p'
 */
export function parseP2pProxy(text: string | undefined, source: string): string | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  let u: URL;
  try {
    u = new URL(text.trim());
  } catch {
    throw new DadiError('EINVAL', `${source}: P2P proxy ${JSON.stringify(text)} is not a URL (want http://host:port)`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username || u.password) {
    throw new DadiError(
      'EINVAL',
      `${source}: P2P proxy ${JSON.stringify(text)} must be http(s)://host[:port][/prefix], without query or credentials`,
    );
  }
  return `${u.origin}${u.pathname}`.replace(/\/+$/, '');
}

/** The URL that asks `proxy` for `upstream` (a full http(s) URL, appended as is). */
export function p2pProxyUrl(proxy: string, upstream: string): string {
  return `${proxy}/${upstream}`;
}
