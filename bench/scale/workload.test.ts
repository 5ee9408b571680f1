import { describe, expect, it } from 'vitest';
import { loadStartReads, planStart, type StartReads } from './workload.js';

const reads: StartReads = {
  note: 'test',
  manifest: 'sha256:x',
  layers: [
    { digest: 'sha256:a', size: 2500 },
    { digest: 'sha256:b', size: 1000 },
  ],
  trace_records: 3,
  trace_bytes: 0,
  mount_reads: [[0, 2400, 100]],
  reads: [
    [0, 900, 200],
    [1, 0, 10],
    [0, 1000, 1],
  ],
};

describe('planStart', () => {
  it('cuts reads into the aligned chunks they touch, mount first, counting each chunk once', () => {
    const p = planStart(reads, 1000);
    expect(p.steps).toEqual([
      [{ layer: 0, index: 2 }],
      [
        { layer: 0, index: 0 },
        { layer: 0, index: 1 },
      ],
      [{ layer: 1, index: 0 }],
      [{ layer: 0, index: 1 }],
    ]);
    expect(p.chunks.map((c) => `${c.layer}:${c.index}`)).toEqual(['0:2', '0:0', '0:1', '1:0']);
    // Chunk 0:2 is the short last one (500 bytes).
    expect(p.neededBytes).toBe(500 + 1000 + 1000 + 1000);
  });

  it('the recorded python start needs fewer bytes than its blobs hold, more with bigger chunks', () => {
    const r = loadStartReads();
    const small = planStart(r, 256 << 10);
    const big = planStart(r, 4 << 20);
    const total = r.layers.reduce((a, l) => a + l.size, 0);
    expect(small.neededBytes).toBeLessThan(big.neededBytes);
    expect(big.neededBytes).toBeLessThan(total);
    expect(small.steps.length).toBe(r.reads.length + 1);
  });
});
