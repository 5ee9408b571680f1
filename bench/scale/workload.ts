// What one container start reads, as the simulator needs it: the recorded blob reads
// (WORKLOAD-start.reads.json, made by record-reads.ts) cut into the P2P chunks they touch, in order,
// and how the measured warm start time is spread between them. Not the hosts or the network.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The coldstart bench's workloads: `python` (app image: Debian + python3) and `cat` (base image). */
export type WorkloadName = 'python' | 'cat';

/** Where the reads of a workload's start are stored. */
export function readsFile(workload: WorkloadName): string {
  return join(dirname(fileURLToPath(import.meta.url)), `${workload}-start.reads.json`);
}

/** A blob read: [layer index (bottom = 0), offset in the layer blob, bytes]. */
export type BlobRead = [number, number, number];

export interface StartReads {
  note: string;
  manifest: string;
  layers: { digest: string; size: number }[];
  trace_records: number;
  trace_bytes: number;
  /** Reads a mount makes before the container runs (ZFile jump tables, LSMT indexes). */
  mount_reads: BlobRead[];
  /** The trace records' blob reads, in recorded order. */
  reads: BlobRead[];
}

export function loadStartReads(workload: WorkloadName = 'python'): StartReads {
  return JSON.parse(readFileSync(readsFile(workload), 'utf8')) as StartReads;
}

/** A chunk of one layer blob: bytes [index × chunkSize, min(size, (index + 1) × chunkSize)). */
export interface ChunkRef {
  layer: number;
  index: number;
}

export interface StartPlan {
  chunkSize: number;
  /** Blob sizes, bottom layer first. */
  layerSizes: number[];
  /**
   * The container's blocking steps in order: each the chunks one read needs (mount reads first,
   * then one step per trace read). A step's chunks are fetched together.
   */
  steps: ChunkRef[][];
  /** Every chunk the start needs, in first-use order (what a trace replay prefetches). */
  chunks: ChunkRef[];
  /** Bytes of `chunks`: one copy of what a start needs at this chunk size. */
  neededBytes: number;
}

/** Cut the recorded reads into chunk steps. */
export function planStart(reads: StartReads, chunkSize: number): StartPlan {
  const layerSizes = reads.layers.map((l) => l.size);
  const seen = new Set<string>();
  const chunks: ChunkRef[] = [];
  const steps: ChunkRef[][] = [];
  let neededBytes = 0;
  const stepOf = (rs: readonly BlobRead[]): ChunkRef[] => {
    const step: ChunkRef[] = [];
    const inStep = new Set<string>();
    for (const [layer, offset, n] of rs) {
      const size = layerSizes[layer];
      if (size === undefined) throw new Error(`reads: layer ${layer} does not exist`);
      for (let i = Math.floor(offset / chunkSize); i * chunkSize < Math.min(size, offset + n); i++) {
        const key = `${layer}:${i}`;
        if (inStep.has(key)) continue;
        inStep.add(key);
        const c = { layer, index: i };
        step.push(c);
        if (!seen.has(key)) {
          seen.add(key);
          chunks.push(c);
          neededBytes += Math.min(chunkSize, size - i * chunkSize);
        }
      }
    }
    return step;
  };
  steps.push(stepOf(reads.mount_reads));
  for (const r of reads.reads) steps.push(stepOf([r]));
  return { chunkSize, layerSizes, steps: steps.filter((s) => s.length > 0), chunks, neededBytes };
}
