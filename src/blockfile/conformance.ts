// The BlockFile conformance suite: the contract of blockfile.ts as executable cases, run by
// test/blockfile-conformance.test.ts against every implementation (as containerd runs its
// snapshotter testsuite against every snapshotter). Each case opens a fresh file through the
// implementation's factory and throws an AssertionError naming the case and the numbers when the
// file breaks the contract. Not a test runner: no vitest here, so any harness can run the cases.
//
// @example
//   for (const c of CONFORMANCE_CASES) it(c.name, () => c.run(async () => ({ file, expected })));

import { fail, ok, strictEqual } from 'node:assert/strict';
import { DadiError } from '../errors.js';
import type { BlockFile } from './blockfile.js';

/** A freshly opened file and the bytes it must read as. */
export interface ConformanceSubject {
  file: BlockFile;
  expected: Uint8Array;
  /** Called after the case, also when it fails (remove temp files, stop servers). */
  cleanup?: () => Promise<void>;
}

export type OpenSubject = () => Promise<ConformanceSubject>;

export interface ConformanceCase {
  name: string;
  run(open: OpenSubject): Promise<void>;
}

/** Run `check` on a fresh subject, closing the file and cleaning up whatever happens. */
async function withSubject(open: OpenSubject, check: (s: ConformanceSubject) => Promise<void>): Promise<void> {
  const s = await open();
  try {
    await check(s);
  } finally {
    await s.file.close();
    await s.cleanup?.();
  }
}

/** Read [offset, offset+length) and check count and bytes against the expected content. */
async function expectRead(s: ConformanceSubject, offset: number, length: number): Promise<void> {
  const buf = new Uint8Array(length);
  const n = await s.file.read(buf, offset);
  const want = Math.max(0, Math.min(length, s.expected.length - Math.min(offset, s.expected.length)));
  strictEqual(
    n,
    want,
    `${s.file.name}: read of ${length} bytes at ${offset} (size ${s.expected.length}) returned ${n}`,
  );
  const got = Buffer.from(buf.buffer, buf.byteOffset, n);
  if (!got.equals(s.expected.subarray(offset, offset + n))) {
    const i = got.findIndex((b, k) => b !== s.expected[offset + k]);
    fail(`${s.file.name}: read of ${length} bytes at ${offset}: byte ${offset + i} differs`);
  }
}

/** Offsets and lengths around block, sector and page edges, clipped to the file. */
function probes(size: number): [number, number][] {
  const offsets = [0, 1, 511, 512, 4095, 4096, 4097, 65535, 65536, Math.floor(size / 2), size - 4097, size - 1];
  const lengths = [1, 7, 512, 4096, 4097, 65537];
  const out: [number, number][] = [];
  for (const o of offsets) if (o >= 0 && o < size) for (const l of lengths) out.push([o, l]);
  return out;
}

async function expectRejects(what: string, p: Promise<unknown>, code: DadiError['code']): Promise<void> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x ?? new Error('rejected with nothing'),
  );
  ok(e !== undefined, `${what}: resolved, but must reject with DadiError ${code}`);
  ok(e instanceof DadiError, `${what}: rejected with ${String(e)}, not a DadiError`);
  strictEqual(e.code, code, `${what}: rejected with ${e.code} (${e.message}), want ${code}`);
}

export const CONFORMANCE_CASES: readonly ConformanceCase[] = [
  {
    name: 'size is the content length and one whole-file read returns every byte',
    run: (open) =>
      withSubject(open, async (s) => {
        strictEqual(s.file.size, s.expected.length, `${s.file.name}: size`);
        await expectRead(s, 0, s.expected.length);
      }),
  },
  {
    name: 'reads at block, sector and page edges return the right bytes',
    run: (open) =>
      withSubject(open, async (s) => {
        for (const [o, l] of probes(s.expected.length)) await expectRead(s, o, l);
      }),
  },
  {
    name: 'a read crossing the end is short: only the bytes the file has',
    run: (open) =>
      withSubject(open, async (s) => {
        const size = s.expected.length;
        for (const back of [1, 10, 4096]) if (back <= size) await expectRead(s, size - back, back + 100);
        await expectRead(s, 0, size + 4096);
      }),
  },
  {
    name: 'reads at and past the end return 0, even at huge offsets',
    run: (open) =>
      withSubject(open, async (s) => {
        const size = s.expected.length;
        for (const o of [size, size + 1, size + 4096, size + (1 << 30), 2 ** 52, Number.MAX_SAFE_INTEGER]) {
          await expectRead(s, o, 10);
        }
      }),
  },
  {
    name: 'zero-length reads return 0 anywhere',
    run: (open) =>
      withSubject(open, async (s) => {
        const size = s.expected.length;
        for (const o of [0, Math.floor(size / 2), size, size + 1]) {
          strictEqual(await s.file.read(new Uint8Array(0), o), 0, `${s.file.name}: zero-length read at ${o}`);
        }
      }),
  },
  {
    name: 'bad offsets (negative, fractional, NaN, unsafe) reject with ERANGE',
    run: (open) =>
      withSubject(open, async (s) => {
        for (const o of [-1, -4096, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
          await expectRejects(`${s.file.name}: read at ${o}`, s.file.read(new Uint8Array(16), o), 'ERANGE');
        }
      }),
  },
  {
    name: 'concurrent reads return what sequential reads return',
    run: (open) =>
      withSubject(open, async (s) => {
        const size = s.expected.length;
        // A fixed spread of overlapping ranges, all in flight at once.
        const ranges = Array.from({ length: 24 }, (_, i): [number, number] => [
          Math.floor((size * ((i * 7) % 24)) / 24),
          1 + ((i * 2654435761) % 70_000),
        ]);
        const bufs = ranges.map(([, l]) => new Uint8Array(l));
        const counts = await Promise.all(ranges.map(([o], i) => s.file.read(bufs[i]!, o)));
        ranges.forEach(([o, l], i) => {
          const want = Math.max(0, Math.min(l, size - o));
          strictEqual(counts[i], want, `${s.file.name}: concurrent read ${i} of ${l} at ${o}`);
          ok(
            Buffer.from(bufs[i]!.subarray(0, want)).equals(s.expected.subarray(o, o + want)),
            `${s.file.name}: concurrent read ${i} of ${l} at ${o} returned other bytes`,
          );
        });
      }),
  },
  {
    name: 'close twice is harmless; a read after close rejects with EINVAL',
    run: (open) =>
      withSubject(open, async (s) => {
        await s.file.close();
        await s.file.close();
        await expectRejects(`${s.file.name}: read after close`, s.file.read(new Uint8Array(16), 0), 'EINVAL');
        await expectRejects(
          `${s.file.name}: read after close past the end`,
          s.file.read(new Uint8Array(16), s.expected.length + 1),
          'EINVAL',
        );
      }),
  },
];
