// Image reads the daemon performs for the CLI while it owns the host's block cache (`dadi
// ls|stat|cat`, `image export`, `layer export` of registry blobs), so those reads hit and fill the
// one cache instead of going past it. The stacks come from src/image as for a standalone command;
// this module only picks the daemon's remote context and the request's fields.

import { DadiError } from '../errors.js';
import { type BrowseResult, browseImage } from '../image/browse.js';
import { type ExportResult, exportImage, exportLayers } from '../image/export-image.js';
import type { RemoteContext } from '../image/remote-context.js';
import { parsePlatform } from '../oci/index.js';
import { layerBlobSourceOf, normalizeLayerSpec } from './layer-source.js';
import type { BrowseRequest, ExportRequest } from './protocol.js';

/** `ls`/`stat`/`cat` of the request; `cat`'s bytes go to `write`. */
export function browseForClient(
  req: BrowseRequest,
  ctx: RemoteContext,
  write: (chunk: Uint8Array) => Promise<void>,
): Promise<BrowseResult> {
  if (!['ls', 'stat', 'cat'].includes(req.what)) {
    throw new DadiError('EINVAL', `browse: unknown operation ${JSON.stringify(req.what)}`);
  }
  return browseImage(req.image, withPlatform(ctx, req.platform), req.what, req.path, write);
}

/** Export the request's image or layer stack to its `out` file; an aborted `signal` cancels it. */
export async function exportForClient(
  req: ExportRequest,
  ctx: RemoteContext,
  signal: AbortSignal,
): Promise<ExportResult> {
  if (typeof req.out !== 'string' || !req.out.startsWith('/')) {
    throw new DadiError('EINVAL', `export: the output must be an absolute path, got ${JSON.stringify(req.out)}`);
  }
  if (req.image !== undefined) return exportImage(req.image, withPlatform(ctx, req.platform), req.out, signal);
  if (!Array.isArray(req.layers) || req.layers.length === 0)
    throw new DadiError('EINVAL', 'export: no image or layers');
  const sources = req.layers.map((l) => layerBlobSourceOf(normalizeLayerSpec(l, '/')));
  return exportLayers(sources, ctx, req.out, signal);
}

function withPlatform(ctx: RemoteContext, platform: string | undefined): RemoteContext {
  return platform ? { ...ctx, platform: parsePlatform(platform) } : ctx;
}
