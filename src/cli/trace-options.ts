// The trace prefetch options `dadi run` and `dadi mount` share, and the mount request they make:
// replay the image's acceleration layer, else auto-trace (replay this host's trace of the image,
// or record one on its first start). Light on purpose: the CLI's run path loads no format code.

import type { Command } from 'commander';
import type { ResolvedRunImage } from '../image/resolve-image.js';
import { registryLayerSpecs } from '../runtime/layer-spec.js';
import type { MountTraceRequest } from '../runtime/protocol.js';
import { parseIntOption } from './output.js';

export interface TraceCliOptions {
  /** false with --no-trace. */
  trace?: boolean;
  /** false with --no-auto-trace. */
  autoTrace?: boolean;
  traceWorkers?: string;
}

export function traceOptions(cmd: Command): Command {
  return cmd
    .option('--no-trace', "no trace prefetch: neither the image's acceleration layer nor auto-trace")
    .option('--no-auto-trace', 'no auto-trace (also: DADI_AUTO_TRACE=0): do not record or replay a host-local trace')
    .option('--trace-workers <n>', 'parallel reads of a trace replay (default 16)');
}

/** What the daemon should do about traces for `img`. */
export function traceRequest(img: ResolvedRunImage, o: TraceCliOptions): MountTraceRequest | undefined {
  if (o.trace === false) return undefined;
  const workers = o.traceWorkers === undefined ? undefined : parseIntOption(o.traceWorkers, '--trace-workers');
  if (img.accelerationLayer) {
    const [spec] = registryLayerSpecs(img.registry, img.repository, [img.accelerationLayer]);
    return { accelerationLayer: spec, workers };
  }
  if (o.autoTrace === false || process.env.DADI_AUTO_TRACE === '0') return undefined;
  const manifestDigest = img.pinned.slice(img.pinned.lastIndexOf('@') + 1);
  return { auto: { image: img.pinned, manifestDigest }, workers };
}
