// Shared helpers for the LSMT tests: temp dirs, a plain byte-array disk model, deterministic data.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { expect } from 'vitest';
import type { SealedLayer } from '../src/format/lsmt/index.js';
import { openLayerBlob } from '../src/image/layer-blob.js';

/** Run `fn` with a fresh temp dir, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'dadi-lsmt-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Deterministic pseudo-random bytes (xorshift32), never all zero for len ≥ 4. */
export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A disk as a plain byte array: what every LSMT device must read back. */
export class DiskModel {
  readonly bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  write(data: Uint8Array, offset: number): void {
    this.bytes.set(data, offset);
  }
  discard(offset: number, length: number): void {
    this.bytes.fill(0, offset, offset + length);
  }
}

export type Op =
  | { kind: 'write'; offset: number; length: number; seed: number }
  | { kind: 'discard'; offset: number; length: number };

/** Random 512-aligned writes (and some discards) inside a disk of `vsize` bytes. */
export const opArb = (vsize: number) =>
  fc
    .record({
      discard: fc.boolean(),
      sector: fc.nat(vsize / 512 - 1),
      sectors: fc.integer({ min: 1, max: 160 }),
      seed: fc.nat(),
    })
    .map(({ discard, sector, sectors, seed }): Op => {
      const offset = sector * 512;
      const length = Math.min(sectors * 512, vsize - offset);
      return discard && seed % 4 === 0 ? { kind: 'discard', offset, length } : { kind: 'write', offset, length, seed };
    });

/** Apply ops to a device and the model; issued without waiting, so order must be kept internally. */
export async function applyOps(
  dev: { write(b: Uint8Array, o: number): Promise<void>; discard(o: number, l: number): Promise<void> },
  model: DiskModel,
  ops: Op[],
): Promise<void> {
  const pending = ops.map((op) => {
    if (op.kind === 'write') {
      const data = pattern(op.length, op.seed);
      model.write(data, op.offset);
      return dev.write(data, op.offset);
    }
    model.discard(op.offset, op.length);
    return dev.discard(op.offset, op.length);
  });
  await Promise.all(pending);
}

export async function expectReads(
  dev: { read(b: Uint8Array, o: number): Promise<number> },
  model: DiskModel,
): Promise<void> {
  const got = new Uint8Array(model.bytes.length);
  expect(await dev.read(got, 0)).toBe(got.length);
  expect(Buffer.from(got).equals(Buffer.from(model.bytes))).toBe(true);
}

/** Every non-zero byte of the model lies inside a reported extent. */
export async function expectExtentsCover(
  dev: { extents(o: number, l: number): AsyncIterable<{ offset: number; length: number }> },
  model: DiskModel,
): Promise<void> {
  const covered = new Uint8Array(model.bytes.length);
  let prevEnd = -1;
  for await (const e of dev.extents(0, model.bytes.length)) {
    expect(e.offset).toBeGreaterThan(prevEnd);
    prevEnd = e.offset + e.length;
    covered.fill(1, e.offset, e.offset + e.length);
  }
  let bad = 0;
  for (let i = 0; i < covered.length; i++) if (model.bytes[i] !== 0 && !covered[i]) bad++;
  expect(bad).toBe(0);
}

/** Open a local layer file (raw LSMT, ZFile, or tar-wrapped) as a sealed layer, as src/image does. */
export async function openLayerFile(path: string): Promise<SealedLayer> {
  return (await openLayerBlob({ kind: 'file', path })).layer;
}
