import { describe, expect, it } from 'vitest';
import { parseJoin, parseProxyPath, parseRange, parseReport } from './protocol.js';

const D = `sha256:${'0a'.repeat(32)}`;

describe('P2P protocol parsing', () => {
  it("reads overlaybd's proxy URL form, with or without the dadip2p prefix", () => {
    const want = { registry: 'reg.lan:5000', repository: 'team/app', digest: D };
    expect(parseProxyPath(`/http://reg.lan:5000/v2/team/app/blobs/${D}`)).toEqual({
      ...want,
      upstream: `http://reg.lan:5000/v2/team/app/blobs/${D}`,
    });
    expect(parseProxyPath(`/dadip2p/https://reg.lan:5000/v2/team/app/blobs/${D}`)?.upstream).toBe(
      `https://reg.lan:5000/v2/team/app/blobs/${D}`,
    );
    expect(parseProxyPath('/p2p/v1/status')).toBeUndefined();
    expect(parseProxyPath(`/http://reg.lan/v2/team/app/manifests/${D}`)).toBeUndefined();
    expect(parseProxyPath(`/http://reg.lan/v2/Team/App/blobs/${D}`)).toBeUndefined();
  });

  it('takes one closed byte range only', () => {
    expect(parseRange('bytes=0-1023')).toEqual({ offset: 0, length: 1024 });
    expect(parseRange('bytes=5-4')).toBeUndefined();
    expect(parseRange('bytes=0-')).toBeUndefined();
    expect(parseRange('bytes=0-1,4-5')).toBeUndefined();
    expect(parseRange(undefined)).toBeUndefined();
  });

  it('names what is wrong in a join or report body', () => {
    const blob = { registry: 'reg.lan:5000', repository: 'app', digest: D };
    expect(parseJoin({ blob, host: { id: 'h1', address: 'http://10.0.0.1:19145', upload: 2 } }).host.upload).toBe(2);
    expect(() => parseJoin({ blob, host: { id: 'h1', address: 'ftp://x' } })).toThrow(/host.address ftp:\/\/x/);
    expect(() => parseJoin({ blob: { ...blob, digest: 'md5:1' }, host: { id: 'h', address: 'http://x' } })).toThrow(
      /blob.digest "md5:1" is not a sha256 digest/,
    );
    expect(() => parseJoin({ blob, host: { id: 'h', address: 'http://x', upload: -1 } })).toThrow(/upload/);
    expect(() => parseReport({ digest: D, host: 'a', peer: 'b', problem: 'rude' })).toThrow(/slow, gone or corrupt/);
    expect(parseReport({ digest: D, host: 'a', peer: 'b', problem: 'gone' }).problem).toBe('gone');
  });
});
