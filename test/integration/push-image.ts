// Push a DADI image made of local layer blobs (bottom first) to a registry, the way `dadi convert`
// lays it out (Docker schema2, overlaybd layer annotations), for tests that need an image by ref.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeJson, MediaType, OverlaybdAnnotation, sha256Of } from '../../src/oci/index.js';
import type { Descriptor } from '../../src/oci/manifest.js';
import { chunkDigestsAnnotations, computeChunkDigests, encodeChunkDigests } from '../../src/p2p/chunk-digests.js';
import { accelerationLayerBlob, accelerationLayerDescriptor } from '../../src/prefetch/accel-layer.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';

export interface PushedImage {
  ref: string;
  manifestDigest: string;
  layers: Array<{ digest: string; size: number }>;
}

export async function pushImage(
  registry: string,
  repository: string,
  tag: string,
  layerPaths: string[],
  runConfig: Record<string, unknown> = {},
  opts: {
    chunkDigests?: boolean;
    client?: RegistryClientOptions;
    /** A trace file's bytes: appended as the acceleration layer, as `ctr record-trace` does. */
    accelerationTrace?: Uint8Array;
  } = {},
): Promise<PushedImage> {
  const client = new RegistryClient(opts.client);
  const repo = { registry, repository };
  try {
    const layers: Array<{ digest: string; size: number; extra?: Record<string, string> }> = [];
    for (const p of layerPaths) {
      const blob = await readFile(p);
      const r = await client.pushBlob(repo, blob);
      let extra: Record<string, string> | undefined;
      if (opts.chunkDigests) {
        // The list `dadi convert` publishes beside the layer, pointed at by the layer's annotations.
        const list = encodeChunkDigests(computeChunkDigests(blob, r.digest));
        const pushed = await client.pushBlob(repo, list);
        extra = chunkDigestsAnnotations({ digest: pushed.digest, size: list.length });
      }
      layers.push({ digest: r.digest, size: blob.length, extra });
    }
    let accel: Descriptor | undefined;
    if (opts.accelerationTrace) {
      const blob = accelerationLayerBlob(opts.accelerationTrace);
      accel = accelerationLayerDescriptor(await client.pushBlob(repo, blob));
    }
    const config = encodeJson({
      architecture: 'amd64',
      os: 'linux',
      config: runConfig,
      rootfs: { type: 'layers', diff_ids: [...layers.map((l) => l.digest), ...(accel ? [accel.digest] : [])] },
      history: [
        ...(accel ? [{ created_by: 'Acceleration Layer' }] : []),
        ...layers.map(() => ({ created_by: 'test' })),
      ],
    });
    await client.pushBlob(repo, config);
    const manifest = encodeJson({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, digest: sha256Of(config), size: config.length },
      layers: [
        ...layers.map((l) => ({
          mediaType: MediaType.dockerLayer,
          digest: l.digest,
          size: l.size,
          annotations: {
            [OverlaybdAnnotation.blobDigest]: l.digest,
            [OverlaybdAnnotation.blobSize]: String(l.size),
            [OverlaybdAnnotation.version]: '0.1.0',
            ...l.extra,
          },
        })),
        ...(accel ? [accel] : []),
      ],
    });
    const manifestDigest = await client.putManifest({ ...repo, tag }, manifest, MediaType.dockerManifest);
    return {
      ref: `${registry}/${repository}:${tag}`,
      manifestDigest,
      layers: layers.map((l) => ({ digest: l.digest, size: l.size })),
    };
  } finally {
    await client.close();
  }
}

/**
 * Push one manifest of an OCI layout (named by its `org.opencontainers.image.ref.name`) to a
 * registry byte for byte: its config and layer blobs, then the manifest under `tag`.
 */
export async function pushLayoutImage(
  layout: string,
  name: string,
  registry: string,
  repository: string,
  tag: string,
): Promise<void> {
  const blob = (digest: string) => readFile(join(layout, 'blobs', ...digest.split(':')));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }>;
  };
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name);
  if (!d) throw new Error(`${layout}: no manifest named ${name}`);
  const bytes = await blob(d.digest);
  const manifest = JSON.parse(bytes.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  const client = new RegistryClient();
  const repo = { registry, repository };
  try {
    for (const b of [manifest.config, ...manifest.layers]) await client.pushBlob(repo, await blob(b.digest));
    await client.putManifest({ ...repo, tag }, bytes, d.mediaType);
  } finally {
    await client.close();
  }
}
