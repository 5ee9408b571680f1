// `dadi commit`: a stopped block-mode container's writable layer becomes a new DADI layer on top of
// its image — committed in the DADI layer format and published through the same image target and
// publish step as `dadi convert` (config with diff_ids + a history entry, then the manifest in the
// image's own media types).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConvertedLayer } from '../convert/manifest.js';
import { publishImage, putLayerBlob } from '../convert/publish.js';
import { digestFile } from '../convert/record.js';
import { DadiError } from '../errors.js';
import { ensureBaseLayers } from '../image/base-layers.js';
import { chunkDigestsDescriptor } from '../image/chunk-integrity.js';
import { DADI_LAYER_OUTPUT, openLayerOutput } from '../image/layer-output.js';
import type { RemoteContext } from '../image/remote-context.js';
import { openImageSource, openImageTarget } from '../image/source.js';
import { MediaType } from '../oci/index.js';
import { splitAccelerationLayer } from '../prefetch/accel-layer.js';
import { commitContainerLayer, readContainer } from './container.js';

export interface CommitImageResult {
  ref: string;
  manifestDigest: string;
  layer: { digest: string; size: number };
}

export async function commitContainerImage(
  name: string,
  target: string,
  ctx: RemoteContext,
  opts: { stateDir?: string; message?: string } = {},
): Promise<CommitImageResult> {
  const rec = await readContainer(name, opts);
  if (!rec.imageRef) throw new DadiError('EINVAL', `container ${name}: no image reference recorded; cannot commit`);
  const src = await openImageSource(rec.imageRef, { client: ctx.client });
  const dir = await mkdtemp(join(tmpdir(), 'dadi-commit-'));
  try {
    const base = await src.resolve({ platform: ctx.platform });
    const { config } = await src.getConfig(base.manifest.config);
    const dst = await openImageTarget(target, { client: ctx.client });
    try {
      // Checked first, as it fails fast where the layer commit takes a while.
      // The container ran on the disk layers: an acceleration layer (a trace) does not carry over.
      const baseLayers = splitAccelerationLayer(base.manifest.layers).lowers;
      await ensureBaseLayers(dst, src, baseLayers, `commit ${name}`);
      const out = join(dir, 'overlaybd.commit');
      await commitContainerLayer(name, await openLayerOutput(out, DADI_LAYER_OUTPUT), {
        stateDir: opts.stateDir,
        userTag: opts.message,
      });
      const layer = await digestFile(out);
      const chunkDigests = await putLayerBlob(dst, out, layer);
      // The base layers keep their chunk digest lists (ensureBaseLayers copied the blobs).
      const layers: ConvertedLayer[] = [
        ...baseLayers.map((l) => ({
          digest: l.digest,
          size: l.size,
          chunkDigests: chunkDigestsDescriptor(l, src.name),
        })),
        { ...layer, chunkDigests },
      ];
      const history = [
        ...(Array.isArray(config.history) ? config.history : []),
        { created: new Date().toISOString(), created_by: `dadi commit ${name}`, comment: opts.message },
      ];
      const published = await publishImage(dst, { ...config, history, created: new Date().toISOString() }, layers, {
        oci: base.mediaType === MediaType.ociManifest,
      });
      return { ref: target, manifestDigest: published.manifest.digest, layer };
    } finally {
      await dst.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await src.close();
  }
}
