import { describe, expect, it } from 'vitest';
import {
  decodeZFileHeader,
  encodeZFileHeader,
  hasFlag,
  ZFILE_FLAGS_HEADER,
  ZFILE_FLAGS_OVERWRITTEN_HEADER,
  ZFILE_FLAGS_TRAILER,
  ZFileFlag,
  type ZFileHeader,
  zfileDigest,
  zfileDigestOk,
} from './header.js';

const base: Omit<ZFileHeader, 'magicOk'> = {
  size: 96,
  digest: 0,
  flags: ZFILE_FLAGS_HEADER,
  indexOffset: 142473,
  indexSize: 550,
  originalFileSize: 2250752,
  indexCrc: 0x78e718e1,
  blockSize: 4096,
  algo: 1,
  level: 0,
  useDict: 0,
  dictSize: 0,
  verify: 1,
};

// Digests the reference writer (overlaybd-commit / overlaybd-zfile) stored in the headers and trailers
// of ../shared/fixtures/overlaybd-samples/zfile: l1.zfile-lz4 (whose header and trailer carry
// `base`'s fields) and plain.zfile-lz4 (header left as first written, index fields zero). Known
// vectors, so the digest function is checked against the C++ implementation, not against itself.
const REFERENCE_DIGESTS: [string, Omit<ZFileHeader, 'magicOk'>, number][] = [
  ['l1.zfile-lz4 header (overwritten at the end)', { ...base, flags: ZFILE_FLAGS_OVERWRITTEN_HEADER }, 0x21924b28],
  ['l1.zfile-lz4 trailer', { ...base, flags: ZFILE_FLAGS_TRAILER }, 0xd1529e0c],
  [
    'plain.zfile-lz4 header (as first written)',
    { ...base, flags: ZFILE_FLAGS_HEADER, indexOffset: 0, indexSize: 0, originalFileSize: 0, indexCrc: 0 },
    0xc7a212fc,
  ],
];

describe('ZFile header codec', () => {
  it('round-trips every field', () => {
    const block = encodeZFileHeader(base);
    expect(block.length).toBe(512);
    expect(Buffer.from(block.subarray(0, 24)).toString('latin1')).toBe('ZFile\0\x01\0tuji.yyf@Alibaba');
    const h = decodeZFileHeader(block);
    expect({ ...h, digest: 0 }).toEqual({ ...base, magicOk: true });
    expect(zfileDigestOk(block)).toBe(true);
    block[400]! ^= 1;
    expect(zfileDigestOk(block)).toBe(false);
  });

  it.each(REFERENCE_DIGESTS)('writes the digest the reference wrote: %s', (_what, fields, digest) => {
    const block = encodeZFileHeader(fields);
    expect(zfileDigest(block)).toBe(digest);
    expect(decodeZFileHeader(block).digest).toBe(digest);
    expect(zfileDigestOk(block)).toBe(true);
  });

  it('writes the digest as given when the digest flag is clear', () => {
    const h = decodeZFileHeader(encodeZFileHeader({ ...base, flags: 0x3n, digest: 0xdeadbeef }));
    expect(h.digest).toBe(0xdeadbeef);
  });

  it('tests single low flag bits and tolerates garbage upper bits (2021 base layer)', () => {
    const flags = 0x7ffea4640b43n; // the real ext4_64 header flags
    expect(hasFlag(flags, ZFileFlag.HEADER)).toBe(true);
    expect(hasFlag(flags, ZFileFlag.DATA)).toBe(true);
    expect(hasFlag(flags, ZFileFlag.SEALED)).toBe(false);
    expect(hasFlag(flags, ZFileFlag.HEADER_OVERWRITE)).toBe(false);
    expect(hasFlag(flags, ZFileFlag.DIGEST)).toBe(false);
    const h = decodeZFileHeader(encodeZFileHeader({ ...base, flags: (1n << 64n) - 1n }));
    expect(h.flags).toBe((1n << 64n) - 1n);
  });

  it('flags a bad magic', () => {
    const block = encodeZFileHeader(base);
    block[9] = 0;
    expect(decodeZFileHeader(block).magicOk).toBe(false);
  });
});
