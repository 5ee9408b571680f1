import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reusedFileChunks } from './blob-file.js';

const MiB = 1 << 20;

describe('reusedFileChunks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-blob-file-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('yields whole 1 MiB chunks (only the last shorter) with the file bytes, its buffers taken in turn', async () => {
    const bytes = randomBytes(5 * MiB + 12345);
    const path = join(dir, 'blob');
    await writeFile(path, bytes);
    const sizes: number[] = [];
    const buffers: ArrayBufferLike[] = [];
    let at = 0;
    for await (const c of reusedFileChunks(path, 2)) {
      expect(Buffer.from(c).equals(bytes.subarray(at, at + c.length))).toBe(true);
      sizes.push(c.length);
      buffers.push(c.buffer);
      at += c.length;
    }
    expect(sizes).toEqual([MiB, MiB, MiB, MiB, MiB, 12345]);
    expect(new Set(buffers).size).toBe(2);
  });

  it('replaces a buffer its consumer transferred away', async () => {
    const bytes = randomBytes(3 * MiB);
    const path = join(dir, 'moved');
    await writeFile(path, bytes);
    const got: Uint8Array[] = [];
    for await (const c of reusedFileChunks(path, 1)) {
      // What postMessage with a transfer list does to it: the copy owns the bytes, c is detached.
      got.push(structuredClone(c, { transfer: [c.buffer as ArrayBuffer] }));
      expect(c.byteLength).toBe(0);
    }
    expect(Buffer.concat(got).equals(bytes)).toBe(true);
  });

  it('yields nothing for an empty file', async () => {
    const path = join(dir, 'empty');
    await writeFile(path, '');
    const got: Uint8Array[] = [];
    for await (const c of reusedFileChunks(path)) got.push(c);
    expect(got).toEqual([]);
  });
});
