// withMountChunks: the chunks the one-host run fetched beyond the recorded reads are read at the
// mount, each once, from chunks the recorded reads never touch; nothing added leaves the plan as is.

import { describe, expect, it } from 'vitest';
import { withMountChunks } from './validate.js';
import { planStart, type StartReads } from './workload.js';

const MiB = 1 << 20;
const reads: StartReads = {
  note: '',
  manifest: '',
  layers: [{ digest: 'sha256:a', size: 5 * MiB + 100 }],
  trace_records: 2,
  trace_bytes: 0,
  mount_reads: [[0, 0, 512]],
  reads: [
    [0, 2 * MiB, 10],
    [0, 5 * MiB, 50],
  ],
};

describe('withMountChunks', () => {
  it('adds untouched chunks of the first layer to the mount step, lowest first', () => {
    const plan = planStart(reads, MiB);
    expect(plan.chunks.map((c) => c.index)).toEqual([0, 2, 5]);
    const more = withMountChunks(plan, 2);
    expect(more.steps[0]!.map((c) => c.index)).toEqual([0, 1, 3]);
    expect(more.steps.slice(1)).toEqual(plan.steps.slice(1));
    expect(more.chunks.map((c) => c.index)).toEqual([0, 1, 3, 2, 5]);
    expect(more.neededBytes).toBe(plan.neededBytes + 2 * MiB);
  });

  it('stops at the blob end and leaves a plan without more chunks unchanged', () => {
    const plan = planStart(reads, MiB);
    expect(withMountChunks(plan, 0)).toBe(plan);
    const all = withMountChunks(plan, 10);
    expect(all.chunks.map((c) => c.index).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(all.neededBytes).toBe(5 * MiB + 100);
  });
});
