// `verifyZFile` checks the whole structure: every reference fixture passes; a file missing its end,
// with bytes after its trailer, with header and trailer disagreeing, or with a bad block fails.

import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../../test/fixtures.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { DadiError } from '../../errors.js';
import { openTarPayload } from '../tar/detect.js';
import { decodeZFileHeader, encodeZFileHeader, ZFILE_HT_SPACE, zfileDigest } from './header.js';
import { verifyZFile } from './verify.js';

const have = haveFixtures('zfile verify tests');
const sample = (rel: string) => readFile(fixture(`overlaybd-samples/zfile/${rel}`));
const FIXTURES = ['l1.lsmt.zfile-lz4', 'l1.zfile-lz4', 'l1.zfile-lz4-bs64', 'l1.zfile-zstd', 'plain.zfile-lz4'];

async function failure(bytes: Uint8Array): Promise<DadiError> {
  const err = await verifyZFile(new MemoryFile(bytes, 'bad.zfile')).catch((e) => e);
  expect(err).toBeInstanceOf(DadiError);
  expect(err.message).toMatch(/^bad\.zfile: /);
  return err;
}

/** Rewrite the trailer's struct with `change` applied, keeping its digest valid. */
function editTrailer(b: Buffer, change: (h: ReturnType<typeof decodeZFileHeader>) => void): Buffer {
  const out = Buffer.from(b);
  const at = out.length - ZFILE_HT_SPACE;
  const h = decodeZFileHeader(out.subarray(at));
  change(h);
  const block = encodeZFileHeader(h);
  new DataView(block.buffer).setUint32(28, zfileDigest(block), true);
  out.set(block, at);
  return out;
}

describe.skipIf(!have)('verifyZFile', () => {
  it.each(FIXTURES)('accepts the reference file %s', async (name) => {
    const r = await verifyZFile(new MemoryFile(await sample(name), name));
    expect(r.blocks).toBeGreaterThan(0);
    expect(r.storedSize).toBe((await sample(name)).length);
  });

  it('accepts the tar-wrapped reference file', async () => {
    const payload = await openTarPayload(new MemoryFile(await sample('l1.zfile-lz4.tar'), 'l1.tar'));
    expect((await verifyZFile(payload)).blocks).toBe(550);
  });

  it('refuses a header-overwrite file missing its last 100 bytes (a reader would open it)', async () => {
    const whole = await sample('l1.zfile-lz4');
    expect(await failure(whole.subarray(0, whole.length - 100))).toMatchObject({
      code: 'EFORMAT',
      message: expect.stringMatching(/trailer missing/),
    });
  });

  it('refuses bytes after the trailer', async () => {
    const whole = await sample('l1.zfile-lz4');
    const longer = Buffer.concat([whole, Buffer.alloc(512)]);
    // The appended zeros are no trailer; a trailer copied to the end is one, but in the wrong place.
    expect((await failure(longer)).message).toMatch(/trailer missing/);
    const moved = Buffer.concat([whole.subarray(0, whole.length - 512), Buffer.alloc(512), whole.subarray(-512)]);
    expect((await failure(moved)).message).toMatch(/index .* and trailer end at/);
  });

  it('refuses a trailer that disagrees with the header', async () => {
    const whole = await sample('l1.zfile-lz4');
    const bad = editTrailer(whole, (h) => {
      h.originalFileSize -= 1;
    });
    expect((await failure(bad)).message).toMatch(/header and trailer disagree on originalFileSize/);
  });

  it('refuses a block whose CRC does not match', async () => {
    const bad = Buffer.from(await sample('plain.zfile-lz4'));
    bad[ZFILE_HT_SPACE + 10]! ^= 0xff;
    expect(await failure(bad)).toMatchObject({ code: 'ECORRUPT' });
  });
});
