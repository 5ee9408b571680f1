// Checking bytes of a layer blob that came from an untrusted peer, before anything uses them. Pure:
// no I/O; the caller loads what to check against (image/chunk-integrity.ts) and decides what to do
// with a bad chunk (blame the peer, fetch it elsewhere). Not a full-blob digest check.
//
// API:
//   const v = new ChunkVerifier({ blob: { digest, size }, digests, zfile, warn });  // one per blob
//   const r = v.verify(offset, bytes);   // bytes = blob bytes [offset, offset + bytes.length)
//   if (!r.ok) blame(peer, r.reason);    // never use the bytes
//
// - With `digests` (the blob's chunk digest list, chunk-digests.ts): `offset` must be a chunk start
//   and `bytes` whole chunks (the last chunk of the blob may be short); each chunk's sha256 must
//   equal the list's. Any flipped byte fails. A wrong length fails too (it is what the peer sent).
// - Without a list but with `zfile` (the ZFile inside the blob has block CRCs): every ZFile block
//   lying entirely inside the range must match its CRC32C; bytes outside such blocks (tar and ZFile
//   headers, the jump table, blocks cut by the range's ends) cannot be checked here — the ZFile
//   reader still checks every block it decodes. `warn` is called once, on the first such check.
// - With neither (no list, not a ZFile or a ZFile without CRCs): nothing can be checked; the result
//   is ok with method 'none' and `warn` is called once.
// A range outside the blob, or (with a list) not starting at a chunk start, is the caller's mistake:
// DadiError ERANGE / EINVAL.

import { createHash } from 'node:crypto';
import { DadiError } from '../errors.js';
import { ZFILE_BLOCK_CRC_SEED } from '../format/zfile/header.js';
import type { Digest } from '../oci/digest.js';
import { crc32cRaw } from '../util/crc32c.js';
import type { ChunkDigests } from './chunk-digests.js';

/** Where the CRC-checked ZFile blocks are in the blob. */
export interface ZFileBlockMap {
  /** Where the ZFile starts in the blob (the tar payload offset; 0 for a bare ZFile). */
  start: number;
  /**
   * Stored start of each block (compressed bytes + 4-byte CRC) relative to `start`; the last entry
   * is where the last block ends (so blockCount + 1 entries, ascending).
   */
  offsets: Float64Array;
}

export type VerifyMethod = 'sha256' | 'zfile-crc' | 'none';

export type ChunkCheck =
  /** `checkedBytes`: how many of the bytes a check covered (all of them with sha256). */
  | { ok: true; method: VerifyMethod; checkedBytes: number }
  /** `reason` names the blob, the chunk or block, and what differs. */
  | { ok: false; method: VerifyMethod; reason: string };

export interface ChunkVerifierOptions {
  blob: { digest: Digest; size: number };
  /** The blob's chunk digest list, when the image has one. */
  digests?: ChunkDigests;
  /** The ZFile block layout, used only without `digests`. */
  zfile?: ZFileBlockMap;
  /** Told once per verifier that chunks are checked by ZFile CRCs only, or not at all. */
  warn?: (message: string) => void;
}

export class ChunkVerifier {
  readonly method: VerifyMethod;
  private warned = false;

  constructor(private readonly opts: ChunkVerifierOptions) {
    const { blob, digests } = opts;
    if (digests && (digests.blob.digest !== blob.digest || digests.blob.size !== blob.size)) {
      throw new DadiError(
        'EINVAL',
        `${blob.digest}: chunk digest list is for ${digests.blob.digest} (${digests.blob.size} bytes), not this blob (${blob.size} bytes)`,
      );
    }
    this.method = digests ? 'sha256' : opts.zfile ? 'zfile-crc' : 'none';
  }

  /** Check `bytes`, the blob's bytes at `offset`. */
  verify(offset: number, bytes: Uint8Array): ChunkCheck {
    const { blob } = this.opts;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > blob.size) {
      throw new DadiError('ERANGE', `${blob.digest}: offset ${offset} is outside the blob (${blob.size} bytes)`);
    }
    if (this.opts.digests) return this.bySha256(this.opts.digests, offset, bytes);
    this.warnOnce();
    if (offset + bytes.length > blob.size) {
      return this.fail(`${bytes.length} bytes at ${offset} run past the end of the blob (${blob.size} bytes)`);
    }
    if (this.opts.zfile) return this.byCrc(this.opts.zfile, offset, bytes);
    return { ok: true, method: 'none', checkedBytes: 0 };
  }

  private bySha256(list: ChunkDigests, offset: number, bytes: Uint8Array): ChunkCheck {
    const { size } = this.opts.blob;
    const cs = list.chunkSize;
    if (offset % cs !== 0) {
      throw new DadiError(
        'EINVAL',
        `${this.opts.blob.digest}: offset ${offset} is not a multiple of the ${cs}-byte chunk`,
      );
    }
    const first = offset / cs;
    const chunks = Math.max(1, Math.ceil(bytes.length / cs));
    const want = Math.min(size, offset + chunks * cs) - offset;
    if (bytes.length !== want || offset === size) {
      return this.fail(`${bytes.length} bytes at ${offset}: chunk ${first} onwards should be ${want} bytes`);
    }
    for (let k = 0; k < chunks; k++) {
      const i = first + k;
      const piece = bytes.subarray(k * cs, (k + 1) * cs);
      const got = createHash('sha256').update(piece).digest();
      const expected = list.digests.subarray(32 * i, 32 * i + 32);
      if (!got.equals(expected)) {
        const at = offset + k * cs;
        return this.fail(
          `chunk ${i} (bytes ${at}..${at + piece.length}) hashes to ${got.toString('hex')}, the list says ${Buffer.from(expected).toString('hex')}`,
        );
      }
    }
    return { ok: true, method: 'sha256', checkedBytes: bytes.length };
  }

  private byCrc(map: ZFileBlockMap, offset: number, bytes: Uint8Array): ChunkCheck {
    const end = offset + bytes.length;
    const off = map.offsets;
    let checked = 0;
    // Blocks whose stored bytes lie in [offset, end): from the first starting at or after offset.
    for (let k = firstAtOrAfter(off, offset - map.start); k + 1 < off.length; k++) {
      const b = map.start + off[k]!;
      const e = map.start + off[k + 1]!;
      if (e > end) break;
      const stored = bytes.subarray(b - offset, e - offset);
      const data = stored.subarray(0, stored.length - 4);
      const crc = crc32cRaw(data, ZFILE_BLOCK_CRC_SEED);
      const want = u32(stored, stored.length - 4);
      if (crc !== want) {
        return this.fail(
          `ZFile block ${k} (bytes ${b}..${e}) fails its CRC (stored ${hex(want)}, computed ${hex(crc)})`,
        );
      }
      checked += e - b;
    }
    return { ok: true, method: 'zfile-crc', checkedBytes: checked };
  }

  private fail(what: string): ChunkCheck {
    return { ok: false, method: this.method, reason: `${this.opts.blob.digest}: ${what}` };
  }

  private warnOnce(): void {
    if (this.warned || !this.opts.warn) return;
    this.warned = true;
    this.opts.warn(
      this.method === 'zfile-crc'
        ? `${this.opts.blob.digest}: no chunk digests published for this blob; checking peer chunks by ZFile block CRCs only`
        : `${this.opts.blob.digest}: no chunk digests and no ZFile block CRCs for this blob; peer chunks cannot be checked`,
    );
  }
}

/** The first index k with offsets[k] >= at (offsets ascending); offsets.length if none. */
function firstAtOrAfter(offsets: Float64Array, at: number): number {
  let lo = 0;
  let hi = offsets.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (offsets[mid]! < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}
