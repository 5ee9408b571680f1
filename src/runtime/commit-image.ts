// `dadi commit`: a stopped block-mode container's writable layer becomes a new DADI layer on top of
// its image — committed as ZFile in the one-file tar, pushed with a config (diff_ids + history
// entry) and a manifest in the image's own media types, annotated as `dadi convert` does.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalFile } from '../blockfile/local.js';
import { type ConvertedLayer, convertedConfig, convertedManifest, outputMediaTypes } from '../convert/manifest.js';
import { DadiError } from '../errors.js';
import { openLayerOutput } from '../image/layer-output.js';
import type { RemoteContext } from '../image/remote-context.js';
import { resolveRunImage } from '../image/resolve-image.js';
import { MediaType, parseDigest, sha256Of } from '../oci/index.js';
import { parseReference } from '../registry/index.js';
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
  const base = await resolveRunImage(rec.imageRef, ctx);
  const to = parseReference(target);
  const toRepo = { registry: to.registry, repository: to.repository };

  const dir = await mkdtemp(join(tmpdir(), 'dadi-commit-'));
  try {
    const out = join(dir, 'overlaybd.commit');
    await commitContainerLayer(
      name,
      await openLayerOutput(out, { tar: true, zfile: { algorithm: 'lz4', blockSize: 4096 } }),
      {
        stateDir: opts.stateDir,
        userTag: opts.message,
      },
    );
    // The base layers must be in the target repository: mount them across repositories when the
    // registry allows it, else the client copies them.
    const sameRepo = to.registry === base.registry && to.repository === base.repository;
    if (!sameRepo) {
      if (to.registry !== base.registry) {
        throw new DadiError('EUNSUPPORTED', `commit ${name}: ${target} is on another registry than ${rec.imageRef}`);
      }
      for (const l of base.layers) {
        if ((await ctx.client.statBlob(toRepo, l.digest)) === undefined) {
          const mounted = await ctx.client.mountBlob(toRepo, l.digest, base.repository);
          if (!mounted) throw new DadiError('EIO', `commit ${name}: could not mount ${l.digest} into ${to.repository}`);
        }
      }
    }
    const file = await LocalFile.open(out);
    let layer: { digest: string; size: number };
    try {
      const pushed = await ctx.client.pushBlob(toRepo, file);
      layer = { digest: pushed.digest, size: pushed.size };
    } finally {
      await file.close();
    }
    const layers: ConvertedLayer[] = [...base.layers, layer].map((l) => ({
      digest: parseDigest(l.digest, target),
      size: l.size,
    }));
    const history = [
      ...(Array.isArray(base.config.history) ? base.config.history : []),
      { created: new Date().toISOString(), created_by: `dadi commit ${name}`, comment: opts.message },
    ];
    const oci = base.mediaType === MediaType.ociManifest;
    const config = convertedConfig(
      { ...base.config, history, created: new Date().toISOString() },
      layers.map((l) => l.digest),
    );
    const configDigest = sha256Of(config);
    await ctx.client.pushBlob(toRepo, config);
    const manifest = convertedManifest({ digest: configDigest, size: config.length }, layers, { oci });
    const manifestDigest = await ctx.client.putManifest(to, manifest, outputMediaTypes(oci).manifest);
    return { ref: target, manifestDigest, layer };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
