// The NBD server against real clients: nbdinfo (list, --map), nbdcopy (byte-equal copy),
// qemu-img (info, compare) and qemu-io (reads, writes, discards, zeroes) over a unix socket and TCP.
// The server runs in the test process: the clients are separate processes, so no threadpool hazard.

import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BlockFile, type ExtentSource, LocalFile, MemoryFile } from '../../src/blockfile/index.js';
import { NbdServer } from '../../src/export/nbd/index.js';
import { runProgram as run } from '../../src/export/system.js';
import { missing, requireOrSkip } from '../require.js';

const haveTools = requireOrSkip(
  'NBD client tests',
  missing({ tools: ['nbdinfo', 'nbdcopy', 'qemu-io'], hint: 'apt-get install libnbd-bin qemu-utils' }),
);

/** A MemoryFile that reports data only where listed (a sparse image model). */
class SparseMemory extends MemoryFile implements ExtentSource {
  constructor(
    size: number,
    private readonly data: { offset: number; length: number }[],
  ) {
    super(size, 'sparse-memory');
    for (const d of data) this.bytes().set(randomBytes(d.length), d.offset);
  }
  async *extents(offset: number, length: number) {
    for (const d of this.data) {
      if (d.offset + d.length > offset && d.offset < offset + length) yield d;
    }
  }
}

const MiB = 1 << 20;

describe.skipIf(!haveTools)('NBD server with real clients', () => {
  let tmp: string;
  let server: NbdServer;
  let tcpServer: NbdServer;
  let sock: string;
  let tcpPort: number;
  const sparse = new SparseMemory(16 * MiB, [
    { offset: 0, length: MiB },
    { offset: 5 * MiB, length: 64 * 1024 },
    { offset: 15 * MiB, length: MiB },
  ]);
  const rw = new MemoryFile(new Uint8Array(randomBytes(8 * MiB)), 'rw-memory');
  let local: LocalFile;
  let localPath: string;
  const uri = (name: string) => `nbd+unix:///${name}?socket=${sock}`;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'dadi-nbd-'));
    sock = join(tmp, 'nbd.sock');
    localPath = join(tmp, 'local.img');
    await writeFile(localPath, randomBytes(4 * MiB));
    local = await LocalFile.open(localPath, { writable: true });
    server = new NbdServer(
      [
        { name: 'sparse', file: sparse, description: 'sparse image' },
        { name: 'rw', file: rw, readOnly: false },
        { name: 'local', file: local, readOnly: false },
        { name: 'plain', file: new MemoryFile(new Uint8Array(randomBytes(MiB))) as BlockFile },
      ],
      { log: (m) => console.error(m) },
    );
    await server.listen({ socket: sock });
    tcpServer = new NbdServer([{ name: 'sparse', file: sparse }]);
    const tcp = await tcpServer.listen({ port: 0 });
    tcpPort = 'port' in tcp ? tcp.port : 0;
  });
  afterAll(async () => {
    await server?.close();
    await tcpServer?.close();
    await local?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('lists every export with its size, description and read-only flag (nbdinfo --list)', async () => {
    const r = await run('nbdinfo', ['--list', '--json', uri('')]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as {
      exports: { 'export-name': string; 'export-size': number; description?: string; is_read_only: boolean }[];
    };
    const byName = Object.fromEntries(info.exports.map((e) => [e['export-name'], e]));
    expect(Object.keys(byName)).toEqual(['sparse', 'rw', 'local', 'plain']);
    expect(byName.sparse!['export-size']).toBe(16 * MiB);
    expect(byName.sparse!.description).toBe('sparse image');
    expect(byName.sparse!.is_read_only).toBe(true);
    expect(byName.rw!.is_read_only).toBe(false);
  });

  it('reports base:allocation from the ExtentSource (nbdinfo --map)', async () => {
    const r = await run('nbdinfo', ['--map', '--json', uri('sparse')]);
    expect(r.code, r.stderr).toBe(0);
    const map = (JSON.parse(r.stdout) as { offset: number; length: number; type: number }[]).map((m) => [
      m.offset,
      m.length,
      m.type,
    ]);
    expect(map).toEqual([
      [0, MiB, 0],
      [MiB, 4 * MiB, 3],
      [5 * MiB, 64 * 1024, 0],
      [5 * MiB + 64 * 1024, 10 * MiB - 64 * 1024, 3],
      [15 * MiB, MiB, 0],
    ]);
    const plain = await run('nbdinfo', ['--map', '--json', uri('plain')]);
    expect(JSON.parse(plain.stdout)).toEqual([{ offset: 0, length: MiB, type: 0, description: 'data' }]);
  });

  it('copies an export byte for byte (nbdcopy), over unix socket and TCP', async () => {
    const out = join(tmp, 'copy.img');
    const r = await run('nbdcopy', [uri('sparse'), out]);
    expect(r.code, r.stderr).toBe(0);
    expect(Buffer.compare(await readFile(out), sparse.bytes())).toBe(0);
    const out2 = join(tmp, 'copy-tcp.img');
    const t = await run('nbdcopy', [`nbd://127.0.0.1:${tcpPort}/sparse`, out2]);
    expect(t.code, t.stderr).toBe(0);
    expect(Buffer.compare(await readFile(out2), sparse.bytes())).toBe(0);
  });

  it('qemu-img info and compare see the exported disk', async () => {
    const info = await run('qemu-img', ['info', '--output=json', uri('sparse')]);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)['virtual-size']).toBe(16 * MiB);
    const file = join(tmp, 'sparse.raw');
    await writeFile(file, sparse.bytes());
    const same = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri('sparse'), file]);
    expect(same.code, same.stdout + same.stderr).toBe(0);
    const other = Buffer.from(sparse.bytes());
    other[5 * MiB + 100] ^= 1;
    await writeFile(file, other);
    const diff = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri('sparse'), file]);
    expect(diff.code).toBe(1);
  });

  it.each(['rw', 'local'])('qemu-io writes, zeroes and discards reach the BlockFile (%s)', async (name) => {
    const r = await run('qemu-io', [
      '-f',
      'raw',
      '-c',
      'write -P 0xab 4096 65536',
      '-c',
      'aio_write -P 0xcd 1048576 131072',
      '-c',
      'aio_write -P 0xce 2097152 4096',
      '-c',
      'aio_flush',
      '-c',
      'read -P 0xab 4096 65536',
      '-c',
      'write -z 3145728 8192',
      '-c',
      'discard 0 4096',
      '-c',
      'flush',
      uri(name),
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/fail|error|Pattern verification/i);
    const bytes = name === 'rw' ? rw.bytes() : await readFile(localPath);
    expect(bytes.subarray(4096, 4096 + 65536).every((b) => b === 0xab)).toBe(true);
    expect(bytes.subarray(MiB, MiB + 131072).every((b) => b === 0xcd)).toBe(true);
    expect(bytes.subarray(2 * MiB, 2 * MiB + 4096).every((b) => b === 0xce)).toBe(true);
    expect(bytes.subarray(3 * MiB, 3 * MiB + 8192).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    const out = join(tmp, `${name}.copy`);
    expect((await run('nbdcopy', [uri(name), out])).code).toBe(0);
    expect(Buffer.compare(await readFile(out), bytes)).toBe(0);
  });

  it('refuses to open a read-only export for writing, and unknown exports', async () => {
    const w = await run('qemu-io', ['-f', 'raw', '-c', 'write 0 512', uri('sparse')]);
    expect(w.stdout + w.stderr).toMatch(/read-only|Operation not permitted|Permission denied/i);
    const before = Buffer.from(sparse.bytes().subarray(0, 512));
    expect(Buffer.compare(before, sparse.bytes().subarray(0, 512))).toBe(0);
    const missing = await run('nbdinfo', [uri('nope')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nope/);
  });
});
