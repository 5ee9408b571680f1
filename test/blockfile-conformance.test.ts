// Every BlockFile implementation against the one contract (src/blockfile/conformance.ts): each
// factory below builds its implementation over known bytes (holes included), and every case runs
// on a fresh instance. Left out: test doubles (src/cache/testing.ts), and pass-through wrappers
// private to a module (image/layer-blob.ts's byte counter), which keep the contract of what they wrap.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlockFile } from '../src/blockfile/blockfile.js';
import { CONFORMANCE_CASES, type ConformanceSubject } from '../src/blockfile/conformance.js';
import { LocalFile } from '../src/blockfile/local.js';
import { MemoryFile } from '../src/blockfile/memory.js';
import { SliceFile } from '../src/blockfile/range.js';
import { ScratchFile } from '../src/blockfile/scratch.js';
import { MemorySink } from '../src/blockfile/sink.js';
import { BlockCache } from '../src/cache/cache.js';
import { patternBytes } from '../src/cache/testing.js';
import { SparseMemoryFile } from '../src/ext4/sparse-file.js';
import { ComboDevice } from '../src/format/lsmt/combo.js';
import { SealedLayer } from '../src/format/lsmt/sealed.js';
import { LayerStack } from '../src/format/lsmt/stack.js';
import { WritableLayer } from '../src/format/lsmt/writable.js';
import { openTarPayload } from '../src/format/tar/detect.js';
import { TarWrapWriter } from '../src/format/tar/writer.js';
import { ZFileReader } from '../src/format/zfile/reader.js';
import { ZFileWriter } from '../src/format/zfile/writer.js';
import { sha256Of } from '../src/oci/digest.js';
import { RegistryClient } from '../src/registry/client.js';
import { RemoteBlob } from '../src/registry/remote-blob.js';

/** Content with a 64 KiB hole: odd-sized where the format allows, whole sectors for LSMT. */
function content(size: number, seed: number): Buffer {
  const b = patternBytes(size, seed);
  b.fill(0, 70_000, 70_000 + 65_536);
  return b;
}
const DATA = content(200_003, 11);
const DISK = content(263_680, 12); // 515 sectors

async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'dadi-conformance-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Write `bytes` into a new writable layer, sector runs only where they are not zero (holes stay unmapped). */
async function writableWith(dir: string, name: string, bytes: Uint8Array, from = 0, to = bytes.length) {
  const w = await WritableLayer.create(join(dir, `${name}.data`), join(dir, `${name}.index`), {
    virtualSize: bytes.length,
  });
  for (let p = from; p < to; p += 32_768) {
    const piece = bytes.subarray(p, Math.min(to, p + 32_768));
    if (piece.some((x) => x !== 0)) await w.write(piece, p);
  }
  return w;
}

async function committed(dir: string, name: string, bytes: Uint8Array, from?: number, to?: number) {
  const w = await writableWith(dir, name, bytes, from, to);
  const sink = new MemorySink();
  await w.commit(sink);
  await w.close();
  return new MemoryFile(sink.bytes(), `${name}.lsmt`);
}

async function zfileOf(bytes: Uint8Array, algorithm: 'lz4' | 'zstd'): Promise<BlockFile> {
  const sink = new MemorySink();
  const w = new ZFileWriter(sink, { algorithm });
  await w.write(bytes);
  await w.end();
  return ZFileReader.open(new MemoryFile(sink.bytes(), `zfile-${algorithm}`));
}

/** A registry that serves one blob with Range support, nothing else. */
async function blobServer(bytes: Buffer): Promise<{ host: string; server: Server }> {
  const server = createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (req.method === 'HEAD' || !m) {
      res.writeHead(200, { 'content-length': String(bytes.length) });
      return void res.end(req.method === 'HEAD' ? undefined : bytes);
    }
    const a = Number(m[1]);
    const b = Math.min(Number(m[2]), bytes.length - 1);
    if (a >= bytes.length) return void res.writeHead(416).end();
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${bytes.length}`, 'content-length': String(b - a + 1) });
    res.end(bytes.subarray(a, b + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { host: `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, server };
}

const IMPLEMENTATIONS: Record<string, () => Promise<ConformanceSubject>> = {
  MemoryFile: async () => ({ file: new MemoryFile(Buffer.from(DATA)), expected: DATA }),
  'MemoryFile (empty)': async () => ({ file: new MemoryFile(0), expected: new Uint8Array(0) }),
  LocalFile: async () => {
    const t = await tempDir();
    await writeFile(join(t.dir, 'blob'), DATA);
    return { file: await LocalFile.open(join(t.dir, 'blob')), expected: DATA, cleanup: t.cleanup };
  },
  'SliceFile (a window in a larger file)': async () => {
    const outer = Buffer.concat([Buffer.alloc(1000, 0xee), DATA, Buffer.alloc(777, 0xdd)]);
    return { file: new SliceFile(new MemoryFile(outer), 1000, DATA.length), expected: DATA };
  },
  'tar payload view': async () => {
    const sink = new MemorySink();
    const tar = new TarWrapWriter(sink);
    await tar.write(DATA);
    await tar.end();
    return { file: await openTarPayload(new MemoryFile(sink.bytes(), 'wrapped.tar')), expected: DATA };
  },
  'ZFileReader (lz4)': async () => ({ file: await zfileOf(DATA, 'lz4'), expected: DATA }),
  'ZFileReader (zstd)': async () => ({ file: await zfileOf(DATA, 'zstd'), expected: DATA }),
  'ZFileReader (empty)': async () => ({ file: await zfileOf(new Uint8Array(0), 'lz4'), expected: new Uint8Array(0) }),
  SealedLayer: async () => {
    const t = await tempDir();
    const file = await SealedLayer.open(await committed(t.dir, 'l', DISK));
    return { file, expected: DISK, cleanup: t.cleanup };
  },
  'LayerStack (two layers)': async () => {
    const t = await tempDir();
    const lower = await committed(t.dir, 'lower', DISK, 0, 131_072);
    const upper = await committed(t.dir, 'upper', DISK, 131_072, DISK.length);
    return { file: await LayerStack.open([lower, upper]), expected: DISK, cleanup: t.cleanup };
  },
  WritableLayer: async () => {
    const t = await tempDir();
    return { file: await writableWith(t.dir, 'rw', DISK), expected: DISK, cleanup: t.cleanup };
  },
  'ComboDevice (writable over a stack)': async () => {
    const t = await tempDir();
    const lower = await LayerStack.open([await committed(t.dir, 'lower', DISK, 0, 196_608)]);
    const upper = await writableWith(t.dir, 'upper', DISK, 196_608, DISK.length);
    return { file: await ComboDevice.open(upper, lower), expected: DISK, cleanup: t.cleanup };
  },
  CachedBlob: async () => {
    const t = await tempDir();
    const cache = await BlockCache.open(join(t.dir, 'cache'), { diskFloor: 0, refillSize: 16_384 });
    const file = cache.open(sha256Of(DATA), new MemoryFile(Buffer.from(DATA), 'source'));
    return {
      file,
      expected: DATA,
      cleanup: async () => {
        await cache.close();
        await t.cleanup();
      },
    };
  },
  'RemoteBlob (a local HTTP registry)': async () => {
    const { host, server } = await blobServer(DATA);
    const client = new RegistryClient({ credentials: undefined, requestTimeoutMs: 5000 });
    const file = await RemoteBlob.open(client, { registry: host, repository: 'conformance' }, sha256Of(DATA), {
      maxRangeBytes: 65_536,
    });
    return {
      file,
      expected: DATA,
      cleanup: async () => {
        await client.close();
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      },
    };
  },
  SparseMemoryFile: async () => {
    const file = new SparseMemoryFile(DATA.length);
    await file.write(DATA, 0);
    return { file, expected: DATA };
  },
  'ScratchFile (a spill file)': async () => {
    const t = await tempDir();
    const file = new ScratchFile(join(t.dir, 'spill'));
    for (let p = 0; p < DATA.length; p += 50_000) await file.write(DATA.subarray(p, p + 50_000), p);
    return { file, expected: DATA, cleanup: t.cleanup };
  },
};

for (const [name, open] of Object.entries(IMPLEMENTATIONS)) {
  describe(`BlockFile conformance: ${name}`, () => {
    for (const c of CONFORMANCE_CASES) it(c.name, () => c.run(open));
  });
}

/** A MemoryFile with one flaw, to show the suite catches it. */
class Flawed extends MemoryFile {
  constructor(private readonly flaw: 'fills past the end' | 'reads after close' | 'wrong bytes at 4096') {
    super(Buffer.from(DATA), `flawed (${flaw})`);
  }
  override async read(buf: Uint8Array, offset: number): Promise<number> {
    if (this.flaw === 'reads after close') return new MemoryFile(Buffer.from(DATA)).read(buf, offset);
    const n = await super.read(buf, offset);
    if (this.flaw === 'fills past the end' && offset >= 0 && n < buf.length) return buf.length;
    if (this.flaw === 'wrong bytes at 4096' && offset <= 4096 && offset + n > 4096) buf[4096 - offset]! ^= 1;
    return n;
  }
}

describe('the conformance suite itself', () => {
  const caseNamed = (prefix: string) => CONFORMANCE_CASES.find((c) => c.name.startsWith(prefix))!;
  it.each([
    ['fills past the end', 'reads at and past the end'],
    ['reads after close', 'close twice'],
    ['wrong bytes at 4096', 'reads at block, sector and page edges'],
  ] as const)('fails a file that %s', async (flaw, prefix) => {
    await expect(caseNamed(prefix).run(async () => ({ file: new Flawed(flaw), expected: DATA }))).rejects.toThrow(
      /flawed/,
    );
  });
});
