// Question: does the sealed-layer reader survive hostile bytes? A mutation fuzzer over small valid
// layers (committed with padding, close-sealed with garbage after the index, 2-layer stacks):
// every case must either read and export whole (nothing mapped beyond the virtual size) or throw a
// DadiError — never another exception, a hang or a huge allocation. Rate is reported against a baseline of opening the unmutated layers.
// Usage: node --import tsx bench/fuzz-lsmt.ts [cases=100000] [seed=1]

import { MemoryFile } from '../src/blockfile/memory.js';
import { MemorySink } from '../src/blockfile/sink.js';
import { DadiError } from '../src/errors.js';
import { commitLayer } from '../src/format/lsmt/commit.js';
import { encodeHeader } from '../src/format/lsmt/header.js';
import { SealedLayer } from '../src/format/lsmt/sealed.js';
import { encodeSegment, type Segment } from '../src/format/lsmt/segment.js';
import { SegmentIndex } from '../src/format/lsmt/segment-index.js';
import { LayerStack } from '../src/format/lsmt/stack.js';
import { checkExportsWhole } from '../test/lsmt-export-check.js';
import { report } from './report.js';

const CASES = Number(process.argv[2] ?? 100_000);
let seed = Number(process.argv[3] ?? 1) >>> 0 || 1;
const rnd = (n: number): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};

async function committed(segs: Segment[], dataSectors: number, vsize: number): Promise<Uint8Array> {
  const src = new MemoryFile(0, 'src');
  await src.write(encodeHeader({ flags: 0x3, virtualSize: vsize }), 0);
  const data = new Uint8Array(dataSectors * 512);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  await src.write(data, 4096);
  const sink = new MemorySink();
  await commitLayer(SegmentIndex.fromSegments(segs), [src], sink, { userTag: 'fuzz' });
  return new Uint8Array(sink.bytes());
}

/** A close-sealed layout: RW header, data, exact index, garbage to 512, trailer. */
function closeSealed(): Uint8Array {
  const entries = 5;
  const dataSectors = 40;
  const indexOffset = 4096 + dataSectors * 512;
  const out = new Uint8Array(indexOffset + 512 + 4096);
  out.set(encodeHeader({ flags: 0x3, virtualSize: 1 << 20 }), 0);
  for (let i = 4096; i < indexOffset; i++) out[i] = i & 0xff;
  const v = new DataView(out.buffer);
  for (let i = 0; i < entries; i++) encodeSegment(v, indexOffset + i * 16, i * 16, 8, 8 + i * 8, i === 3, 0);
  for (let i = indexOffset + entries * 16; i < indexOffset + 512; i++) out[i] = 0xa5; // uninitialised
  out.set(encodeHeader({ flags: 0x6, virtualSize: 1 << 20, indexOffset, indexSize: entries }), indexOffset + 512);
  return out;
}

const bases = [
  await committed(
    [
      { offset: 0, length: 16, moffset: 8, zeroed: false, tag: 0 },
      { offset: 32, length: 8, moffset: 0, zeroed: true, tag: 0 },
      { offset: 100, length: 200, moffset: 24, zeroed: false, tag: 0 },
    ],
    216,
    1 << 20,
  ),
  await committed(
    Array.from({ length: 300 }, (_, i) => ({
      offset: i * 3,
      length: 2,
      moffset: 8 + i * 2,
      zeroed: i % 7 === 0,
      tag: 0,
    })),
    600,
    2 ** 36,
  ),
  closeSealed(),
];

const interesting = [
  0,
  1,
  7,
  8,
  511,
  512,
  4095,
  4096,
  2 ** 31,
  2 ** 32,
  999_999,
  1_000_000,
  1_000_001,
  2 ** 40,
  2 ** 50 - 1,
  2 ** 53 - 1,
];

function mutate(base: Uint8Array): Uint8Array {
  let b = Uint8Array.from(base);
  const v = new DataView(b.buffer);
  const trailer = b.length - 4096;
  const ops = 1 + rnd(4);
  for (let k = 0; k < ops; k++) {
    switch (rnd(8)) {
      case 0: // random byte anywhere
        b[rnd(b.length)] = rnd(256);
        break;
      case 1: {
        // header or trailer field
        const at = (rnd(2) ? trailer : 0) + [24, 28, 32, 40, 48, 56, 93, 132][rnd(8)]!;
        const val = interesting[rnd(interesting.length)]! + (rnd(3) - 1);
        if (val >= 0 && at + 8 <= b.length) {
          v.setUint32(at, val % 2 ** 32, true);
          v.setUint32(at + 4, Math.floor(val / 2 ** 32) % 2 ** 32, true);
        }
        break;
      }
      case 2: {
        // an index entry near the trailer's index_offset
        const io = v.getUint32(trailer + 32, true);
        const at = io + 16 * rnd(8);
        if (at + 16 <= b.length) {
          encodeSegment(
            v,
            at,
            interesting[rnd(interesting.length)]! % 2 ** 50,
            rnd(16384),
            interesting[rnd(interesting.length)]! % 2 ** 53,
            rnd(2) === 1,
            rnd(256),
          );
        }
        break;
      }
      case 3: // flip a bit in the flags
        b[(rnd(2) ? trailer : 0) + 28] ^= 1 << rnd(8);
        break;
      case 4: // truncate
        b = b.subarray(0, rnd(b.length + 1));
        return b;
      case 5: {
        // extend with garbage
        const more = new Uint8Array(b.length + 1 + rnd(8192));
        more.set(b);
        for (let i = b.length; i < more.length; i++) more[i] = rnd(256);
        return more;
      }
      default: {
        // burst of random bytes in the index area
        const io = v.getUint32(trailer + 32, true);
        for (let i = 0; i < 8; i++) {
          const at = io + rnd(512);
          if (at < b.length) b[at] = rnd(256);
        }
      }
    }
  }
  return b;
}

async function exercise(layer: SealedLayer | LayerStack): Promise<void> {
  const size = layer.size;
  const buf = new Uint8Array(65536);
  for (let i = 0; i < 3; i++) {
    const off = size > 0 ? rnd(Math.min(size, 2 ** 31)) : 0;
    await layer.read(buf.subarray(0, 512 * (1 + rnd(128))), off);
  }
  let n = 0;
  for await (const _ of layer.extents(0, Math.min(size, 2 ** 34))) if (++n > 200) break;
  await checkExportsWhole(layer);
}

const outcome = {
  read: 0,
  rejected: 0,
  crashes: 0,
  byCode: {} as Record<string, number>,
  slowestMs: 0,
  examples: [] as string[],
};
const start = performance.now();
for (let c = 0; c < CASES; c++) {
  const t = performance.now();
  try {
    const base = bases[rnd(bases.length)]!;
    if (rnd(10) === 0) {
      const stack = await LayerStack.open([
        new MemoryFile(mutate(base), 'a.lsmt'),
        new MemoryFile(mutate(bases[0]!), 'b.lsmt'),
      ]);
      await exercise(stack);
    } else {
      await exercise(await SealedLayer.open(new MemoryFile(mutate(base), 'fuzz.lsmt')));
    }
    outcome.read++;
  } catch (e) {
    if (e instanceof DadiError) {
      outcome.rejected++;
      outcome.byCode[e.code] = (outcome.byCode[e.code] ?? 0) + 1;
    } else {
      outcome.crashes++;
      if (outcome.examples.length < 5) outcome.examples.push(String((e as Error)?.stack ?? e));
    }
  }
  outcome.slowestMs = Math.max(outcome.slowestMs, performance.now() - t);
}
const secs = (performance.now() - start) / 1000;

// Baseline: open and exercise the unmutated layers at the same pace.
const bStart = performance.now();
const bN = Math.min(CASES, 20_000);
for (let c = 0; c < bN; c++)
  await exercise(await SealedLayer.open(new MemoryFile(bases[c % bases.length]!, 'base.lsmt')));
const baseRate = bN / ((performance.now() - bStart) / 1000);

report('fuzz-lsmt', 'LSMT sealed-layer mutation fuzzing', [
  {
    case: `${CASES} mutated layers (open + reads + extents + in-memory export)`,
    unit: 'cases/s',
    value: CASES / secs,
    baseline: baseRate,
    baselineName: 'unmutated layers',
    extra: outcome,
  },
]);
if (outcome.crashes > 0) process.exitCode = 1;
