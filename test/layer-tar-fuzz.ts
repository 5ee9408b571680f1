// Layer-tar fuzz harness shared by the suite's sample (src/ext4/apply-fuzz.test.ts) and
// bench/fuzz-layer-tar.ts: seed layers covering every entry kind the reader and apply handle
// (PAX records, GNU long names and links, whiteouts, opaque dirs, hard links, devices, xattrs),
// the header fields worth mutating, and the per-case check: apply the mutated layer to a fresh
// filesystem; it must succeed (and the result read back) or fail with a DadiError, within a time bound.

import { gzipSync } from 'node:zlib';
import { DadiError } from '../src/errors.js';
import { applyLayer } from '../src/ext4/apply.js';
import { Ext4 } from '../src/ext4/fs.js';
import { ROOT_INO } from '../src/ext4/layout.js';
import { mkfs } from '../src/ext4/mkfs.js';
import { SparseMemoryFile } from '../src/ext4/sparse-file.js';
import { TAR_BLOCK, TAR_FIELDS } from '../src/format/tar/header.js';
import { type Field, mutate, rng } from './mutate.js';
import { type BuildEntry, tarOf } from './tar-build.js';
import { fixTarChecksum } from './tar-fuzz.js';

export interface LayerTarget {
  label: string;
  bytes: Uint8Array;
  fields: Field[];
  hot: { offset: number; length: number }[];
}

export type Verdict = 'ok' | 'rejected';

const FS_SIZE = 64 << 20;
/** A case that takes longer than this is a hang. */
export const CASE_TIMEOUT_MS = 20_000;

const bytes = (s: string) => Buffer.from(s);

/** The base layer: one of every kind, in ustar, GNU and PAX spellings. */
function baseEntries(): BuildEntry[] {
  const long = `deep/${'n'.repeat(140)}`;
  return [
    { name: 'etc/', type: '5', mode: 0o755 },
    { name: 'etc/passwd', type: '0', data: bytes('root:x:0:0::/root:/bin/sh\n'), uid: 0, gid: 0, mtime: 1 },
    { name: 'etc/hl', type: '1', linkname: 'etc/passwd' },
    { name: 'bin', type: '2', linkname: 'usr/bin' },
    { name: 'usr/bin/tool', type: '0', data: new Uint8Array(9000).fill(7), mode: 0o755, magic: 'gnu' },
    { name: 'dev/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: '4', devmajor: 8, devminor: 0 },
    { name: 'run/fifo', type: '6' },
    { name: 'x', type: '0', magic: 'gnu', gnuLongName: `${long}/file`, data: bytes('long\n') },
    { name: 'y', type: '2', magic: 'gnu', gnuLongName: `${long}-link`, gnuLongLink: `${'t'.repeat(120)}` },
    {
      name: 'pax',
      type: '0',
      size: 0,
      data: bytes('pax data'),
      pax: {
        path: `${long}/pax-file`,
        size: '8',
        uid: '3000000',
        gid: '7',
        mtime: '1234.5',
        atime: '1',
        'SCHILY.xattr.user.bin': Uint8Array.of(0, 0xff, 0x80),
        'LIBARCHIVE.xattr.user.b64': 'aGVsbG8=',
      },
    },
    { name: 'plink', type: '2', linkname: 'x', pax: { linkpath: `${long}/pax-file` } },
    { name: 'opq/', type: '5' },
    { name: 'opq/keep', type: '0', data: bytes('k') },
    { name: 'gone', type: '0', data: bytes('g') },
  ];
}

/** The upper layer: whiteouts, an opaque dir, replacing and re-linking. */
function upperEntries(): BuildEntry[] {
  return [
    { name: '.wh.gone', type: '0' },
    { name: 'opq/.wh..wh..opq', type: '0' },
    { name: 'opq/new', type: '0', data: bytes('n') },
    { name: 'etc/passwd', type: '0', data: bytes('changed\n') },
    { name: 'etc/hl2', type: '1', linkname: 'etc/passwd' },
    { name: 'usr/bin/.wh.tool', type: '0' },
    { name: 'usr', type: '5', prefix: '', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } },
  ];
}

/** Header blocks of a tar (walking the sizes as written). */
function headerOffsets(tar: Uint8Array): number[] {
  const out: number[] = [];
  let at = 0;
  while (at + TAR_BLOCK <= tar.length && tar[at] !== 0) {
    out.push(at);
    const size = Number.parseInt(Buffer.from(tar.subarray(at + 124, at + 136)).toString('latin1'), 8) || 0;
    at += TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
  }
  return out;
}

function target(label: string, tar: Uint8Array): LayerTarget {
  const fields: Field[] = [];
  const hot: { offset: number; length: number }[] = [];
  for (const at of headerOffsets(tar)) {
    hot.push({ offset: at, length: TAR_BLOCK });
    for (const f of ['mode', 'uid', 'size', 'mtime', 'typeflag', 'linkname', 'devmajor', 'prefix'] as const) {
      const { offset, size } = TAR_FIELDS[f];
      const sz = size >= 8 ? 8 : 1;
      fields.push({ offset: at + offset, size: sz, fix: fixTarChecksum(at) });
    }
    // PAX record digits and GNU long-name bytes in the block after an extension header.
    fields.push({ offset: at + TAR_BLOCK, size: 2 });
  }
  return { label, bytes: tar, fields, hot };
}

export function layerTargets(): LayerTarget[] {
  const base = tarOf(baseEntries());
  const upper = tarOf(upperEntries());
  return [
    target('base', base),
    target('upper', upper),
    { label: 'base.gz', bytes: gzipSync(base), fields: [], hot: [] },
  ];
}

/** A fresh filesystem holding the base layer, for the upper layer's cases; and an empty one. */
export interface FuzzFilesystems {
  empty: SparseMemoryFile;
  withBase: SparseMemoryFile;
}

export async function fuzzFilesystems(): Promise<FuzzFilesystems> {
  const empty = new SparseMemoryFile(FS_SIZE, 'fuzz.img');
  await mkfs(empty, { size: FS_SIZE });
  const withBase = empty.clone();
  const fs = await Ext4.open(withBase);
  await applyLayer(fs, once(tarOf(baseEntries())), { name: 'base.tar' });
  await fs.close();
  return { empty, withBase };
}

async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}

/** Walk the whole tree by inode, reading every file and link: a filesystem we wrote must read back. */
async function walk(fs: Ext4, dir: number, depth: number): Promise<void> {
  if (depth > 64) throw new Error(`directory tree deeper than 64 at inode ${dir}`);
  const buf = new Uint8Array(1 << 16);
  for (const e of await fs.entries(dir)) {
    if (e.type === 2) await walk(fs, e.ino, depth + 1);
    else if (e.type === 7) await fs.readlinkIno(e.ino);
    else if (e.type === 1) for (let o = 0, n = 1; n > 0; o += n) n = await fs.readIno(e.ino, buf, o);
  }
}

/** Apply `tar` on a clone of `base`; ok / rejected (DadiError); anything else throws. */
export async function checkLayer(base: SparseMemoryFile, tar: Uint8Array): Promise<Verdict> {
  const file = base.clone('fuzz-case.img');
  let timer: NodeJS.Timeout | undefined;
  const run = async (): Promise<Verdict> => {
    const fs = await Ext4.open(file);
    try {
      await applyLayer(fs, once(tar), { name: 'case.tar' });
      await fs.close();
    } catch (e) {
      if (e instanceof DadiError) return 'rejected';
      throw e;
    }
    await walk(await Ext4.open(file), ROOT_INO, 0);
    return 'ok';
  };
  try {
    return await Promise.race([
      run(),
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`hang: case took over ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FuzzTally {
  cases: number;
  ok: number;
  rejected: number;
  crashes: number;
  /** The first crashes (case number, target, mutation steps, stack), for the report. */
  crashLog: string[];
  seconds: number;
}

/**
 * Run `cases` seeded mutation cases over the layer targets (round robin): the upper layer applies
 * on a filesystem holding the base, the others on an empty one.
 */
export async function runLayerFuzz(cases: number, seed: number): Promise<FuzzTally> {
  const fss = await fuzzFilesystems();
  const targets = layerTargets();
  const rand = rng(seed);
  const tally: FuzzTally = { cases, ok: 0, rejected: 0, crashes: 0, crashLog: [], seconds: 0 };
  const t0 = performance.now();
  for (let i = 0; i < cases; i++) {
    const t = targets[i % targets.length]!;
    const m = mutate(t.bytes, rand, t.fields, t.hot);
    try {
      tally[await checkLayer(t.label === 'upper' ? fss.withBase : fss.empty, m.bytes)]++;
    } catch (e) {
      tally.crashes++;
      if (tally.crashLog.length < 20)
        tally.crashLog.push(`seed ${seed} case ${i} (${t.label}: ${m.steps.join(', ')}): ${(e as Error).stack}`);
    }
  }
  tally.seconds = (performance.now() - t0) / 1000;
  return tally;
}
