// Progress of a conversion: the events the pipeline emits, and a line-oriented printer for a
// terminal (one line per layer phase change, to stderr). Not a UI toolkit.

import type { Digest } from '../oci/digest.js';
import { formatSize } from '../util/size.js';

export type LayerPhase = 'download' | 'apply' | 'commit' | 'upload' | 'done' | 'reused';

export type ProgressEvent =
  | { kind: 'resolved'; source: string; manifest: Digest; layers: number; platform: string }
  | {
      kind: 'layer';
      /** 0-based layer index. */
      layer: number;
      layers: number;
      phase: LayerPhase;
      /** Source layer digest. */
      digest: Digest;
      /** Bytes (download: compressed; apply: uncompressed tar; commit/upload: the blob). */
      bytes?: number;
      seconds?: number;
    }
  | { kind: 'manifest'; target: string; digest: Digest };

/** A progress callback that prints one line per event to `out` (default stderr). */
export function lineProgress(out: NodeJS.WritableStream = process.stderr): (e: ProgressEvent) => void {
  return (e) => {
    if (e.kind === 'resolved') {
      out.write(`${e.source}: ${e.layers} layer(s), manifest ${e.manifest.slice(0, 19)}… (${e.platform})\n`);
    } else if (e.kind === 'manifest') {
      out.write(`${e.target}: pushed manifest ${e.digest}\n`);
    } else {
      const parts = [`layer ${e.layer + 1}/${e.layers} ${e.digest.slice(7, 19)}`, e.phase];
      if (e.bytes !== undefined) parts.push(formatSize(e.bytes));
      if (e.seconds !== undefined) parts.push(`${e.seconds.toFixed(2)} s`);
      out.write(`${parts.join(' ')}\n`);
    }
  };
}

/** Seconds on a monotonic clock, for the phase timings of events and results. */
export function clock(): number {
  return performance.now() / 1000;
}
