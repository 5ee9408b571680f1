import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mixedData, zfileBytes } from '../../test/zfile-fuzz.js';
import type { BlockFile } from '../blockfile/blockfile.js';
import { MemoryFile } from '../blockfile/memory.js';
import { BlockCache } from '../cache/cache.js';
import { CountingSource } from '../cache/testing.js';
import { ZFileReader } from '../format/zfile/reader.js';
import { decodeTrace, encodeTrace } from './trace-format.js';
import { TraceRecorder } from './trace-recorder.js';
import { TraceReplay } from './trace-replay.js';

/** A file that logs the ranges read from it and can hold reads until released. */
class LoggingFile implements BlockFile {
  readonly reads: Array<[number, number]> = [];
  gate: Promise<void> | undefined;
  constructor(
    private readonly inner: BlockFile,
    private readonly fail = false,
  ) {}
  get name() {
    return this.inner.name;
  }
  get size() {
    return this.inner.size;
  }
  async read(buf: Uint8Array, offset: number) {
    this.reads.push([offset, buf.length]);
    await this.gate;
    if (this.fail) throw new Error('injected failure');
    return this.inner.read(buf, offset);
  }
  close() {
    return this.inner.close();
  }
}

const mem = (n: number, name: string) => new MemoryFile(new Uint8Array(n).fill(7), name);

describe('trace record → file → replay', () => {
  it('records full-length reads per layer and replays them, coalesced, on the same layers', async () => {
    const rec = new TraceRecorder();
    const a = rec.wrap(mem(1 << 20, 'a'), 0);
    const b = rec.wrap(mem(1 << 20, 'b'), 1);
    await a.read(new Uint8Array(4096), 0);
    await a.read(new Uint8Array(4096), 4096);
    await b.read(new Uint8Array(512), 65536);
    await a.read(new Uint8Array(8192), (1 << 20) - 4096); // short read at the end: not recorded
    const file = encodeTrace(rec.records());
    const records = decodeTrace(file, 'recorded');
    expect(records).toEqual([
      { layer: 0, offset: 0, count: 4096 },
      { layer: 0, offset: 4096, count: 4096 },
      { layer: 1, offset: 65536, count: 512 },
    ]);

    const la = new LoggingFile(mem(1 << 20, 'a'));
    const lb = new LoggingFile(mem(1 << 20, 'b'));
    const replay = new TraceReplay([la, lb], records, { workers: 4 });
    const s = await replay.done;
    expect(la.reads).toEqual([[0, 8192]]);
    expect(lb.reads).toEqual([[65536, 512]]);
    expect(s).toMatchObject({
      records: 3,
      planned: 2,
      reads: 2,
      bytes: 8192 + 512,
      failed: 0,
      cancelled: false,
      finished: true,
    });
  });

  it('splits reads over 4 MiB into records a replay can take', () => {
    const rec = new TraceRecorder();
    rec.note(0, 0, (4 << 20) + 10);
    expect(rec.records()).toEqual([
      { layer: 0, offset: 0, count: 4 << 20 },
      { layer: 0, offset: 4 << 20, count: 10 },
    ]);
  });

  it('skips and counts failures, and reads of a layer the image does not have', async () => {
    const bad = new LoggingFile(mem(1 << 16, 'bad'), true);
    const good = new LoggingFile(mem(1 << 16, 'good'));
    const logs: string[] = [];
    const s = await new TraceReplay(
      [bad, good],
      [
        { layer: 0, offset: 0, count: 100 },
        { layer: 5, offset: 0, count: 100 },
        { layer: 1, offset: 0, count: 100 },
      ],
      { workers: 1, log: (m) => logs.push(m) },
    ).done;
    expect(s).toMatchObject({ reads: 1, bytes: 100, failed: 2, finished: true });
    expect(good.reads).toEqual([[0, 100]]);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/layer 0 failed \(skipped\): injected failure/);
  });

  it('cancel stops taking reads and waits for those in flight', async () => {
    const f = new LoggingFile(mem(1 << 20, 'slow'));
    let release!: () => void;
    f.gate = new Promise((r) => (release = r));
    const records = Array.from({ length: 100 }, (_, i) => ({ layer: 0, offset: i * 8192, count: 4096 }));
    const replay = new TraceReplay([f], records, { workers: 3 });
    await new Promise((r) => setImmediate(r));
    expect(f.reads).toHaveLength(3);
    const cancelled = replay.cancel();
    release();
    const s = await cancelled;
    expect(s).toMatchObject({ cancelled: true, finished: true, reads: 3, planned: 100 });
    expect(f.reads).toHaveLength(3);
  });
});

describe('replay through a ZFile over the block cache', () => {
  it('prefetches the recorded reads in fewer GETs than reads, and the reads then come from the cache', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dadi-trace-replay-'));
    const data = mixedData(1 << 20, 3);
    const src = new CountingSource(new MemoryFile(await zfileBytes(data, {}), 'layer.zfile'));
    const cache = await BlockCache.open(dir, { diskFloor: 0, readahead: 0 });
    try {
      const zfile = await ZFileReader.open(cache.open(`sha256:${'cd'.repeat(32)}`, src));
      // 8 files of 15 blocks 100 KiB apart, their blocks read in no particular order (120 reads),
      // and one read far away.
      const records = Array.from({ length: 120 }, (_, i) => ({
        layer: 0,
        offset: (i % 8) * 100_000 + ((i * 7) % 15) * 4096,
        count: 4096,
      }));
      records.push({ layer: 0, offset: data.length - 3000, count: 3000 });
      const before = src.requests;
      const s = await new TraceReplay([zfile], records).done;
      expect(s).toMatchObject({ records: 121, prefetched: true, failed: 0, finished: true });
      expect(s.planned).toBeLessThanOrEqual(9); // 8 files and the far read, or fewer where a gap was joined
      const gets = src.requests - before;
      expect(gets).toBeGreaterThan(0);
      expect(gets).toBeLessThanOrEqual(s.planned);
      await cache.flush();
      for (const r of records) {
        const buf = new Uint8Array(r.count);
        expect(await zfile.read(buf, r.offset)).toBe(r.count);
        expect(Buffer.from(buf).equals(Buffer.from(data.subarray(r.offset, r.offset + r.count)))).toBe(true);
      }
      expect(src.requests - before).toBe(gets); // every read a cache hit
    } finally {
      await cache.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
