// Helpers for the convert tests: build an OCI layout from layer tars, open a converted image's
// layers (from a layout) as one stack, and describe the ext4 tree inside it.

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Ext4 } from '../../src/ext4/index.js';
import { LayerStack, type SealedLayer } from '../../src/format/lsmt/index.js';
import { loadChunkDigests } from '../../src/image/chunk-integrity.js';
import { sha256Of } from '../../src/oci/digest.js';
import type { ImageSource } from '../../src/oci/image-source.js';
import { OciLayout } from '../../src/oci/layout.js';
import type { Descriptor, ImageManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { openLayerFile } from '../lsmt-helpers.js';

/** Push the image tagged `tag` in the layout at `layoutDir` to the registry image `ref`. */
export async function pushLayout(client: RegistryClient, layoutDir: string, tag: string, ref: string): Promise<void> {
  const layout = await OciLayout.open(layoutDir);
  const img = await layout.resolve({ tag });
  const r = parseReference(ref);
  for (const d of [img.manifest.config, ...img.manifest.layers]) {
    await client.pushBlob(r, await readFile(layout.blobPath(d.digest)), { digest: d.digest });
  }
  await client.putManifest(r, img.bytes, img.mediaType);
}

/**
 * Write an OCI layout at `dir` holding one image of `layers` (tar or gzip bytes), tagged `tag`;
 * media types follow the bytes unless `mediaTypes` says otherwise (hostile tests).
 */
export async function writeImageLayout(
  dir: string,
  layers: Buffer[],
  tag = 'latest',
  opts: { diffIds?: string[]; mediaTypes?: string[] } = {},
): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha256Of(b);
    await writeFile(join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const descs = [];
  const diffIds = [];
  for (const [i, l] of layers.entries()) {
    const gz = l[0] === 0x1f && l[1] === 0x8b;
    // Given diff_ids spare gunzipping (a generated 10 GiB layer would not fit in a Buffer).
    if (!opts.diffIds) diffIds.push(sha256Of(plainOf(l, gz)));
    const mediaType = opts.mediaTypes?.[i] ?? (gz ? MediaType.ociLayerGzip : MediaType.ociLayer);
    descs.push({ mediaType, ...(await put(l)) });
  }
  const config = {
    created: '2024-01-02T03:04:05.000000006Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: opts.diffIds ?? diffIds },
    history: layers.map((_, i) => ({ created_by: `layer ${i}` })),
  };
  const cfg = await put(Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, ...cfg },
    layers: descs,
  };
  const m = await put(Buffer.from(JSON.stringify(manifest)));
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: MediaType.ociManifest,
          ...m,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
}

function plainOf(l: Buffer, gz: boolean): Buffer {
  try {
    return gz ? gunzipSync(l) : l;
  } catch {
    return Buffer.alloc(0); // corrupt gzip (hostile tests): any diff_id will do
  }
}

export interface OpenedImage {
  manifest: ImageManifest;
  stack: LayerStack;
  fs: Ext4;
  close(): Promise<void>;
}

/** Open a converted image in a layout as a LayerStack and its ext4 filesystem. */
export async function openConverted(dir: string, tag: string): Promise<OpenedImage> {
  const layout = await OciLayout.open(dir);
  const img = await layout.resolve({ tag });
  const layers: SealedLayer[] = [];
  for (const l of img.manifest.layers) layers.push(await openLayerFile(layout.blobPath(l.digest)));
  const stack = LayerStack.fromLayers(layers, { checkChain: true });
  const fs = await Ext4.open(stack);
  return { manifest: img.manifest, stack, fs, close: () => stack.close() };
}

export { describeExt4 } from '../ext4-tools.js';

/** Read a whole file from the image. */
export async function readAll(fs: Ext4, path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of fs.readFile(path)) parts.push(c);
  return Buffer.concat(parts);
}

/**
 * The sha256 of each 1 MiB chunk of `blob` (layer `layer`'s bytes), in order, as the chunk digest
 * list that `src` holds for the layer says (computed here independently of the writer).
 */
export async function listedChunkDigests(src: ImageSource, layer: Descriptor, blob: Buffer) {
  const list = await loadChunkDigests(src, layer);
  if (!list) throw new Error(`layer ${layer.digest} has no chunk digest list`);
  const listed: string[] = [];
  const wanted: string[] = [];
  for (let i = 0; i * (1 << 20) < blob.length; i++) {
    listed.push(Buffer.from(list.digests.subarray(32 * i, 32 * i + 32)).toString('hex'));
    wanted.push(
      createHash('sha256')
        .update(blob.subarray(i << 20, (i + 1) << 20))
        .digest('hex'),
    );
  }
  return { chunkSize: list.chunkSize, entries: list.digests.length / 32, listed, wanted };
}

export { readFile };
