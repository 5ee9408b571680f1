import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../../test/fixtures.js';
import { MemoryFile } from '../../blockfile/memory.js';
import { FileSink, MemorySink, type Sink } from '../../blockfile/sink.js';
import { compressFile } from '../zfile/whole-file.js';
import { detectTar } from './detect.js';
import { decodeTarHeader, tarText } from './header.js';
import { finalHeaders, placeholderHeaders, TarWrapWriter } from './writer.js';

const have = haveFixtures('tar writer fixture tests');

describe('TarWrapWriter', () => {
  it('wraps a payload as the one member, padded and terminated', async () => {
    const mem = new MemorySink();
    const w = new TarWrapWriter(mem);
    await w.write(new TextEncoder().encode('hello '));
    await w.write(new TextEncoder().encode('world'));
    expect(w.position).toBe(11);
    await w.pwrite(new TextEncoder().encode('J'), 6);
    await w.end();
    const out = mem.bytes();
    expect(out.length).toBe(1536 + 512 + 1024);
    expect(out.subarray(1536, 1547).toString()).toBe('hello Jorld');
    expect(out.subarray(1547).every((b) => b === 0)).toBe(true);
    expect(await detectTar(new MemoryFile(out))).toEqual({
      payloadOffset: 1536,
      payloadSize: 11,
      memberName: 'overlaybd.commit',
    });
    const member = decodeTarHeader(out.subarray(1024, 1536));
    expect(member).toMatchObject({
      mode: 0o100644,
      uid: 0,
      gid: 0,
      uname: 'root',
      gname: 'root',
      mtime: 0,
      size: 0,
      checksumOk: true,
    });
  });

  it('takes the mode and owner names as options', () => {
    const h = decodeTarHeader(finalHeaders(1, { mode: 0o100600, uname: 'u', gname: 'g' }).subarray(1024));
    expect(h).toMatchObject({ mode: 0o100600, uname: 'u', gname: 'g', checksumOk: true });
  });

  it('writes the reference placeholder while streaming', () => {
    const p = Buffer.from(placeholderHeaders());
    expect(p.subarray(512, 521).toString()).toBe('9 size=0\n');
    const marker = decodeTarHeader(p.subarray(1024));
    expect(tarText(marker.name)).toBe('overlaybd.new');
    expect(p.subarray(1024 + 257, 1024 + 265).toString('latin1')).toBe('xxtar\0xx');
  });

  it('refuses a sink without pwrite and pwrites past the payload', async () => {
    const appendOnly: Sink = { name: 'upload', position: 0, write: async () => {}, end: async () => {} };
    expect(() => new TarWrapWriter(appendOnly)).toThrow(/upload: the tar wrapper needs a sink that can pwrite/);
    const w = new TarWrapWriter(new MemorySink());
    await w.write(new Uint8Array(10));
    await expect(w.pwrite(new Uint8Array(4), 8)).rejects.toMatchObject({ code: 'ERANGE' });
  });
});

describe.skipIf(!have)('TarWrapWriter against overlaybd-commit -z -t', () => {
  it('reproduces l1.zfile-lz4.tar byte for byte', async () => {
    const mem = new MemorySink();
    const src = new MemoryFile(await readFile(fixture('overlaybd-samples/lsmt/l1.lsmt')));
    const stats = await compressFile(src, new TarWrapWriter(mem), { overwriteHeader: true });
    expect(stats.headerOverwritten).toBe(true);
    const want = await readFile(fixture('overlaybd-samples/zfile/l1.zfile-lz4.tar'));
    expect(Buffer.compare(mem.bytes(), want)).toBe(0);
  });

  it('does the same through a FileSink on disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-tar-'));
    try {
      const out = join(dir, 'l1.tar');
      const src = new MemoryFile(await readFile(fixture('overlaybd-samples/lsmt/l1.lsmt')));
      await compressFile(src, new TarWrapWriter(await FileSink.create(out)), { overwriteHeader: true });
      const want = await readFile(fixture('overlaybd-samples/zfile/l1.zfile-lz4.tar'));
      expect(Buffer.compare(await readFile(out), want)).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
