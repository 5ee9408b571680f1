// Container starts on a simulated host: each container runs the recorded start (workload.ts) as
// compute slices between blocking reads, the measured warm start time spread evenly over the
// slices, so a start whose chunks are all local takes exactly the warm time. The host's daemon may
// replay the trace first (prefetch, as `dadi` does for an image with an acceleration layer). Not
// where chunks come from: the host's `need` (cluster.ts) decides that.

import type { Simulation } from './simulation.js';
import type { ChunkRef, StartPlan } from './workload.js';

/** Whatever gives a container its chunks: `then` runs once the chunk is local. */
export interface ChunkSource {
  has(layer: number, chunk: number): boolean;
  need(layer: number, chunk: number, then: () => void): void;
}

/** Run `then` once every chunk of `refs` is local (all asked for at once). */
export function needAll(source: ChunkSource, refs: readonly ChunkRef[], then: () => void): void {
  let left = refs.length;
  if (left === 0) {
    then();
    return;
  }
  for (const r of refs) {
    source.need(r.layer, r.index, () => {
      if (--left === 0) then();
    });
  }
}

/** Runs `seconds` of a container's compute, then `then` (a delay, or shared cores: cpu.ts). */
export type Compute = (seconds: number, then: () => void) => void;

/** Start one container now; `onStarted` gets the simulated time its start finished. */
export function startContainer(
  sim: Simulation,
  source: ChunkSource,
  plan: Pick<StartPlan, 'steps'>,
  warmStartS: number,
  onStarted: (at: number) => void,
  compute: Compute = (seconds, then) => sim.after(seconds, then),
): void {
  const steps = plan.steps;
  const slice = warmStartS / (steps.length + 1);
  const local = (refs: readonly ChunkRef[]) => refs.every((r) => source.has(r.layer, r.index));
  // From the compute slice before step i: steps whose chunks are local now cost no wait (chunks
  // are never evicted), so one event covers their slices.
  const run = (i: number) => {
    let j = i;
    while (j < steps.length && local(steps[j]!)) j++;
    compute(slice * (j - i + 1), () => {
      if (j === steps.length) onStarted(sim.now);
      else needAll(source, steps[j]!, () => run(j + 1));
    });
  };
  run(0);
}

/** Replay the trace's chunks in first-use order, `workers` at a time (the daemon's trace prefetch). */
export function replayTrace(source: ChunkSource, chunks: readonly ChunkRef[], workers: number): void {
  let next = 0;
  const worker = (): void => {
    if (next >= chunks.length) return;
    const c = chunks[next++]!;
    source.need(c.layer, c.index, worker);
  };
  for (let i = 0; i < Math.min(workers, chunks.length); i++) worker();
}
