// Tar-wrapper fuzz harness shared by the suite's fuzz sample and bench/fuzz-tar.ts: a tar-wrapped
// ZFile from our writers, the header fields worth mutating, and the per-case check.

import type { BlockFile } from '../src/blockfile/blockfile.js';
import { MemoryFile } from '../src/blockfile/memory.js';
import { SliceFile } from '../src/blockfile/range.js';
import { MemorySink } from '../src/blockfile/sink.js';
import { DadiError } from '../src/errors.js';
import { detectTar } from '../src/format/tar/detect.js';
import { octal, TAR_BLOCK, TAR_FIELDS, tarChecksums } from '../src/format/tar/header.js';
import { TarWrapWriter } from '../src/format/tar/writer.js';
import { ZFileWriter, type ZFileWriterOptions } from '../src/format/zfile/writer.js';
import type { Field } from './mutate.js';
import { type CaseResult, checkZFile, mixedData } from './zfile-fuzz.js';

export interface TarTarget {
  label: string;
  data: Uint8Array;
  bytes: Uint8Array;
  fields: Field[];
  hot: { offset: number; length: number }[];
}

/** Recompute the checksum of the header block at `at`, the reference's way. */
export function fixTarChecksum(at: number): (b: Uint8Array) => void {
  return (b) => {
    if (at + TAR_BLOCK > b.length) return;
    const block = b.subarray(at, at + TAR_BLOCK);
    const text = new TextEncoder().encode(octal(tarChecksums(block).unsigned, 8));
    block.fill(0, TAR_FIELDS.chksum.offset, TAR_FIELDS.chksum.offset + 8);
    block.set(text, TAR_FIELDS.chksum.offset);
  };
}

export async function tarTargets(): Promise<TarTarget[]> {
  const variants: [string, ZFileWriterOptions][] = [
    ['tar-lz4-overwrite', { overwriteHeader: true }],
    ['tar-zstd-trailer', { algorithm: 'zstd' }],
  ];
  const out: TarTarget[] = [];
  for (const [label, opts] of variants) {
    const data = mixedData(30_000, label.length);
    const sink = new MemorySink();
    const w = new ZFileWriter(new TarWrapWriter(sink), opts);
    await w.write(data);
    await w.end();
    const bytes = Uint8Array.from(sink.bytes());
    const fields: Field[] = [];
    for (const block of [0, 2 * TAR_BLOCK]) {
      for (const f of ['mode', 'size', 'mtime', 'chksum', 'typeflag', 'magic', 'version', 'prefix'] as const) {
        const { offset, size } = TAR_FIELDS[f];
        const sz = size >= 8 ? 8 : size >= 4 ? 4 : size >= 2 ? 2 : 1;
        fields.push({ offset: block + offset, size: sz });
        fields.push({ offset: block + offset, size: sz, fix: fixTarChecksum(block) });
      }
    }
    // The PAX record "NN size=NNNNN\n".
    for (let i = 0; i < 16; i += 2) fields.push({ offset: TAR_BLOCK + i, size: 2 });
    out.push({ label, data, bytes, fields, hot: [{ offset: 0, length: 3 * TAR_BLOCK }] });
  }
  return out;
}

/** Detect the tar, open the ZFile inside and read it; failures must be DadiErrors (see checkZFile). */
export async function checkTar(
  file: BlockFile,
  original: Uint8Array,
  strict: boolean,
  seed: number,
): Promise<CaseResult> {
  let payload: BlockFile;
  try {
    const t = await detectTar(file);
    if (!t) return 'rejected';
    payload = new SliceFile(file, t.payloadOffset, t.payloadSize);
  } catch (e) {
    if (e instanceof DadiError) return 'rejected';
    throw e;
  }
  return checkZFile(payload, original, strict, seed);
}

export { MemoryFile };
