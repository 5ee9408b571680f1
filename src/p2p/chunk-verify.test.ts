// ChunkVerifier: with a digest list every good chunk passes and any flipped byte, short or long
// chunk fails naming the chunk; without one, the CRCs of the ZFile blocks inside a range catch
// corruption in them (on the reference's tar-wrapped ZFile), with one warning per blob.

import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../test/fixtures.js';
import { TEST_SEED } from '../../test/seed.js';
import { MemoryFile } from '../blockfile/memory.js';
import { patternBytes } from '../cache/testing.js';
import { DadiError } from '../errors.js';
import { zfileBlockMap } from '../image/chunk-integrity.js';
import { sha256Of } from '../oci/digest.js';
import { computeChunkDigests } from './chunk-digests.js';
import { ChunkVerifier } from './chunk-verify.js';

const CS = 64 << 10;
const blob = patternBytes(5 * CS + 777, TEST_SEED + 2);
const desc = { digest: sha256Of(blob), size: blob.length };
const chunks = Math.ceil(blob.length / CS);

function withList(warn?: (m: string) => void): ChunkVerifier {
  return new ChunkVerifier({ blob: desc, digests: computeChunkDigests(blob, desc.digest, CS), warn });
}

describe('ChunkVerifier with a digest list', () => {
  it('accepts every chunk and every run of whole chunks, without warning', () => {
    const warnings: string[] = [];
    const v = withList((m) => warnings.push(m));
    expect(v.method).toBe('sha256');
    for (let i = 0; i < chunks; i++) {
      for (let k = 1; i + k <= chunks; k++) {
        const r = v.verify(i * CS, blob.subarray(i * CS, (i + k) * CS));
        expect(r).toEqual({ ok: true, method: 'sha256', checkedBytes: Math.min(blob.length, (i + k) * CS) - i * CS });
      }
    }
    expect(warnings).toEqual([]);
  });

  it('rejects a chunk with any one byte changed, naming the chunk', () => {
    const v = withList();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: blob.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        fc.integer({ min: 1, max: 3 }),
        (at, xor, span) => {
          const i = Math.floor(at / CS);
          const first = Math.max(0, Math.min(i, chunks - span));
          const bytes = Buffer.from(blob.subarray(first * CS, (first + span) * CS));
          bytes[at - first * CS]! ^= xor;
          const r = v.verify(first * CS, bytes);
          expect(r.ok).toBe(false);
          if (!r.ok) expect(r.reason).toContain(`${desc.digest}: chunk ${i} (bytes ${i * CS}..`);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects short, long and empty chunks', () => {
    const v = withList();
    expect(v.verify(0, blob.subarray(0, CS - 1)).ok).toBe(false);
    expect(v.verify(0, Buffer.concat([blob.subarray(0, CS), Buffer.alloc(1)])).ok).toBe(false);
    expect(v.verify(5 * CS, blob.subarray(5 * CS, blob.length - 1)).ok).toBe(false);
    expect(v.verify(5 * CS, Buffer.concat([blob.subarray(5 * CS), Buffer.alloc(1)])).ok).toBe(false);
    expect(v.verify(CS, Buffer.alloc(0)).ok).toBe(false);
  });

  it('refuses ranges that are the caller’s mistake, and a list of another blob', () => {
    const v = withList();
    expect(() => v.verify(100, blob.subarray(100, 100 + CS))).toThrow(DadiError);
    expect(() => v.verify(blob.length + 1, Buffer.alloc(1))).toThrow(/outside the blob/);
    expect(() => v.verify(-CS, Buffer.alloc(1))).toThrow(/outside the blob/);
    const other = computeChunkDigests(blob.subarray(1), sha256Of(blob.subarray(1)), CS);
    expect(() => new ChunkVerifier({ blob: desc, digests: other })).toThrow(/chunk digest list is for/);
  });
});

const have = haveFixtures('chunk verifier CRC fallback');

describe.skipIf(!have)('ChunkVerifier without a list: ZFile CRCs', () => {
  // The reference's tar-wrapped ZFile layer (550 blocks of 4 KiB, payload at 1536).
  const load = () => readFile(fixture('overlaybd-samples/zfile/l1.zfile-lz4.tar'));

  it('passes every window of a good blob, covering every block once, and warns once', async () => {
    const bytes = await load();
    const map = (await zfileBlockMap(new MemoryFile(bytes, 'l1.tar')))!;
    expect(map.start).toBe(1536);
    expect(map.offsets.length).toBe(551);
    const warnings: string[] = [];
    const v = new ChunkVerifier({
      blob: { digest: sha256Of(bytes), size: bytes.length },
      zfile: map,
      warn: (m) => warnings.push(m),
    });
    expect(v.method).toBe('zfile-crc');
    const whole = v.verify(0, bytes);
    const blocksBytes = map.offsets[550]! - map.offsets[0]!;
    expect(whole).toEqual({ ok: true, method: 'zfile-crc', checkedBytes: blocksBytes });
    for (let at = 0; at < bytes.length; at += 16 << 10) {
      const r = v.verify(at, bytes.subarray(at, at + (16 << 10)));
      expect(r.ok).toBe(true);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/no chunk digests .* ZFile block CRCs only/);
  });

  it('catches a flipped byte in any block lying inside the range', async () => {
    const bytes = await load();
    const map = (await zfileBlockMap(new MemoryFile(bytes, 'l1.tar')))!;
    const v = new ChunkVerifier({ blob: { digest: sha256Of(bytes), size: bytes.length }, zfile: map });
    const first = map.start + map.offsets[0]!;
    const last = map.start + map.offsets[550]!;
    fc.assert(
      fc.property(
        fc.integer({ min: first, max: last - 1 }),
        fc.integer({ min: 1, max: 255 }),
        fc.integer({ min: 0, max: 8 << 10 }),
        fc.integer({ min: 0, max: 8 << 10 }),
        (at, xor, before, after) => {
          // The range starts at or before the block holding `at` and ends at or after its end.
          let k = 0;
          while (map.start + map.offsets[k + 1]! <= at) k++;
          const from = Math.max(0, map.start + map.offsets[k]! - before);
          const to = Math.min(bytes.length, map.start + map.offsets[k + 1]! + after);
          const piece = Buffer.from(bytes.subarray(from, to));
          piece[at - from]! ^= xor;
          const r = v.verify(from, piece);
          expect(r.ok).toBe(false);
          if (!r.ok) expect(r.reason).toMatch(new RegExp(`ZFile block ${k} \\(bytes .*\\) fails its CRC`));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('has no map for a blob that is not a ZFile; then nothing is checked, with one warning', async () => {
    expect(await zfileBlockMap(new MemoryFile(blob, 'random'))).toBeUndefined();
    const warnings: string[] = [];
    const v = new ChunkVerifier({ blob: desc, warn: (m) => warnings.push(m) });
    expect(v.verify(0, blob.subarray(0, CS))).toEqual({ ok: true, method: 'none', checkedBytes: 0 });
    expect(v.verify(CS, blob.subarray(CS, 2 * CS)).ok).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cannot be checked/);
  });
});
