// The P2P proxy setting: normalised addresses, the URL form overlaybd sends, and refusals that name
// where the setting came from.

import { describe, expect, it } from 'vitest';
import { p2pProxyUrl, parseP2pProxy } from './p2p-proxy.js';

describe('P2P proxy setting', () => {
  it('keeps scheme, host, port and prefix, without trailing slashes; empty means none', () => {
    expect(parseP2pProxy('http://127.0.0.1:19145/dadip2p/', 'x')).toBe('http://127.0.0.1:19145/dadip2p');
    expect(parseP2pProxy(' https://agent.lan:65001 ', 'x')).toBe('https://agent.lan:65001');
    expect(parseP2pProxy('', 'x')).toBeUndefined();
    expect(parseP2pProxy(undefined, 'x')).toBeUndefined();
  });

  it('asks for the full upstream URL after the address', () => {
    expect(p2pProxyUrl('http://127.0.0.1:19145/dadip2p', 'https://reg.io/v2/a/b/blobs/sha256:00')).toBe(
      'http://127.0.0.1:19145/dadip2p/https://reg.io/v2/a/b/blobs/sha256:00',
    );
  });

  it.each([
    ['127.0.0.1:19145', /not a URL|must be http/],
    ['ftp://host/x', /must be http/],
    ['http://user:pw@host:1', /without query or credentials/],
    ['http://host:1/?a=b', /without query/],
  ])('refuses %s, naming the source', (text, re) => {
    expect(() => parseP2pProxy(text, 'DADI_P2P_PROXY')).toThrow(re);
    expect(() => parseP2pProxy(text, 'DADI_P2P_PROXY')).toThrow(/^DADI_P2P_PROXY: /);
  });
});
