import { describe, expect, it } from 'vitest';
import { MemoryFile } from '../../blockfile/memory.js';
import { detectTar } from './detect.js';
import { goSingleFileTar } from './go-member.js';
import { decodeTarHeader, TAR_FIELDS } from './header.js';

const field = (b: Uint8Array, f: keyof typeof TAR_FIELDS) =>
  Buffer.from(b.subarray(TAR_FIELDS[f].offset, TAR_FIELDS[f].offset + TAR_FIELDS[f].size)).toString('latin1');

describe("a one-file tar as Go's archive/tar writes it", () => {
  it('has the ustar header fields Go writes and the payload at 512', async () => {
    const data = new Uint8Array(1000).map((_, i) => i & 0xff);
    const tar = goSingleFileTar('trace', data);
    expect(tar.length).toBe(512 + 1024 + 1024);
    const h = decodeTarHeader(tar.subarray(0, 512), { strict: true });
    expect(h).toMatchObject({ format: 'ustar', checksumOk: true, mode: 0o444, uid: 0, gid: 0, size: 1000, mtime: 0 });
    expect(h.typeflag).toBe('0');
    expect(field(tar, 'name')).toBe(`trace${'\0'.repeat(95)}`);
    expect(field(tar, 'mode')).toBe('0000444\0');
    expect(field(tar, 'size')).toBe('00000001750\0');
    expect(field(tar, 'mtime')).toBe('00000000000\0');
    expect(field(tar, 'chksum')).toMatch(/^0[0-7]{5}\0 $/);
    expect(field(tar, 'magic') + field(tar, 'version')).toBe('ustar\x0000');
    expect(field(tar, 'uname')).toBe('\0'.repeat(32));
    expect(field(tar, 'devmajor')).toBe('0000000\0');
    expect(Buffer.from(tar.subarray(512, 1512)).equals(Buffer.from(data))).toBe(true);
    expect(tar.subarray(1512).every((b) => b === 0)).toBe(true);
    expect(await detectTar(new MemoryFile(tar))).toEqual({
      payloadOffset: 512,
      payloadSize: 1000,
      memberName: 'trace',
    });
  });

  it('an empty file is a header and the end-of-archive blocks', () => {
    expect(goSingleFileTar('trace', new Uint8Array(0)).length).toBe(512 + 1024);
  });
});
