// ZFile fuzz harness shared by the suite's fuzz sample and bench/fuzz-zfile.ts: base files from our
// writer, the integer fields worth mutating, and the per-case check (DadiError or correct bytes).

import type { BlockFile } from '../src/blockfile/blockfile.js';
import { MemoryFile } from '../src/blockfile/memory.js';
import { MemorySink } from '../src/blockfile/sink.js';
import { DadiError } from '../src/errors.js';
import { decodeZFileHeader, ZFILE_HT_SPACE, zfileDigest } from '../src/format/zfile/header.js';
import { ZFileReader } from '../src/format/zfile/reader.js';
import { ZFileWriter, type ZFileWriterOptions } from '../src/format/zfile/writer.js';
import { crc32cRaw } from '../src/util/crc32c.js';
import type { Field } from './mutate.js';
import { rng } from './mutate.js';

/** Realistic mixed content: zero runs, text-like runs, random runs. */
export function mixedData(size: number, seed: number): Uint8Array {
  const rand = rng(seed);
  const out = new Uint8Array(size);
  const words = ['overlaybd ', 'lsmt ', 'zfile ', 'block ', 'layer ', 'image\n', 'container ', '0123456789 '];
  let p = 0;
  while (p < size) {
    const len = Math.min(size - p, 1 + Math.floor(rand() * 12000));
    const kind = rand();
    if (kind < 0.3) {
      // zeros
    } else if (kind < 0.7) {
      let q = p;
      while (q < p + len) {
        const w = words[Math.floor(rand() * words.length)]!;
        for (let i = 0; i < w.length && q < p + len; i++) out[q++] = w.charCodeAt(i);
      }
    } else {
      for (let q = p; q < p + len; q++) out[q] = Math.floor(rand() * 256);
    }
    p += len;
  }
  return out;
}

/** Compress `data` in memory with our writer. */
export async function zfileBytes(data: Uint8Array, opts: ZFileWriterOptions): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = new ZFileWriter(sink, opts);
  await w.write(data);
  await w.end();
  return Uint8Array.from(sink.bytes());
}

export interface ZFileTarget {
  label: string;
  data: Uint8Array;
  bytes: Uint8Array;
  fields: Field[];
  hot: { offset: number; length: number }[];
}

/** Recompute the digest of the 512-byte struct at `pos` (< 0: from the end). */
function fixDigest(pos: number): (b: Uint8Array) => void {
  return (b) => {
    const at = pos < 0 ? b.length + pos : pos;
    if (at < 0 || at + ZFILE_HT_SPACE > b.length) return;
    const block = b.subarray(at, at + ZFILE_HT_SPACE);
    new DataView(block.buffer, block.byteOffset + 28, 4).setUint32(0, zfileDigest(block), true);
  };
}

/** Recompute the jump-table CRC (in header and trailer) and both digests after an index edit. */
function fixIndex(indexOffset: number, n: number): (b: Uint8Array) => void {
  return (b) => {
    if (b.length < indexOffset + 4 * n + ZFILE_HT_SPACE) return;
    const crc = crc32cRaw(b.subarray(indexOffset, indexOffset + 4 * n));
    for (const pos of [0, b.length - ZFILE_HT_SPACE]) {
      new DataView(b.buffer, b.byteOffset + pos + 64, 4).setUint32(0, crc, true);
      fixDigest(pos)(b);
    }
  };
}

const STRUCT_FIELDS: [number, 1 | 4 | 8][] = [
  [24, 4],
  [28, 4],
  [32, 8],
  [40, 8],
  [48, 8],
  [56, 8],
  [64, 4],
  [72, 4],
  [76, 1],
  [78, 1],
  [84, 4],
  [88, 1],
];

/** The base files the fuzzers mutate (small, so each case is fast). */
export async function zfileTargets(): Promise<ZFileTarget[]> {
  const variants: [string, number, ZFileWriterOptions][] = [
    ['lz4-4k-trailer', 45_000, { algorithm: 'lz4' }],
    ['lz4-4k-overwrite', 45_000, { algorithm: 'lz4', overwriteHeader: true }],
    ['zstd-4k-overwrite', 45_000, { algorithm: 'zstd', overwriteHeader: true }],
    ['lz4-64k-trailer', 200_000, { algorithm: 'lz4', blockSize: 65536 }],
    ['zstd-8k-trailer', 30_000, { algorithm: 'zstd', blockSize: 8192 }],
  ];
  const out: ZFileTarget[] = [];
  for (const [label, size, opts] of variants) {
    const data = mixedData(size, size + label.length);
    const bytes = await zfileBytes(data, opts);
    const t = decodeZFileHeader(bytes.subarray(bytes.length - ZFILE_HT_SPACE));
    const fields: Field[] = [];
    for (const [off, sz] of STRUCT_FIELDS) {
      for (const pos of [0, -ZFILE_HT_SPACE]) {
        fields.push({ offset: pos + off, size: sz });
        fields.push({ offset: pos + off, size: sz, fix: fixDigest(pos) });
      }
    }
    for (let k = 0; k < t.indexSize; k++) {
      fields.push({ offset: t.indexOffset + 4 * k, size: 4 });
      fields.push({ offset: t.indexOffset + 4 * k, size: 4, fix: fixIndex(t.indexOffset, t.indexSize) });
    }
    const hot = [
      { offset: 0, length: 96 },
      { offset: -ZFILE_HT_SPACE, length: 96 },
      { offset: t.indexOffset, length: 4 * t.indexSize },
    ];
    out.push({ label, data, bytes, fields, hot });
  }
  return out;
}

export type CaseResult = 'ok' | 'rejected';

/**
 * Open and read a (mutated) ZFile. Any failure must be a DadiError. When `strict` (a single
 * mutation), every byte returned must equal `original` and nothing past it may be returned.
 */
export async function checkZFile(
  file: BlockFile,
  original: Uint8Array,
  strict: boolean,
  seed: number,
): Promise<CaseResult> {
  let z: ZFileReader;
  try {
    z = await ZFileReader.open(file);
  } catch (e) {
    if (e instanceof DadiError) return 'rejected';
    throw e;
  }
  const rand = rng(seed);
  const ranges: [number, number][] = [
    [0, Math.min(z.size, 1 << 18)],
    [Math.max(0, z.size - 5000), 6000],
  ];
  for (let i = 0; i < 3; i++) ranges.push([Math.floor(rand() * (z.size + 100)), 1 + Math.floor(rand() * 70_000)]);
  let result: CaseResult = 'ok';
  for (const [off, len] of ranges) {
    const buf = new Uint8Array(len);
    try {
      const n = await z.read(buf, off);
      if (strict) {
        const want = original.subarray(Math.min(off, original.length), Math.min(off + n, original.length));
        if (want.length !== n || !Buffer.from(buf.subarray(0, n)).equals(want)) {
          throw new Error(`wrong bytes at ${off}+${n} (size ${z.size}, original ${original.length})`);
        }
      }
    } catch (e) {
      if (!(e instanceof DadiError)) throw e;
      result = 'rejected';
    }
  }
  try {
    if (z.verify) await z.verifyBlocks();
  } catch (e) {
    if (!(e instanceof DadiError)) throw e;
    result = 'rejected';
  }
  return result;
}

export { MemoryFile };
