// Open an image named by a registry reference (`host[:port]/repo[:tag|@digest]`, blobs read lazily
// through the cache) or by an OCI layout (`oci:DIR[:TAG]`, blobs read from its files) as one
// virtual disk with its manifest and config: the merged stack of its layers, or with `writable`
// a writable layer over it. Every command that reads an image's disk comes here.
// Not a converter: the layers must already be DADI layers.

import type { BlockFile } from '../blockfile/blockfile.js';
import { DadiError } from '../errors.js';
import type { ComboDevice, LayerStack } from '../format/lsmt/index.js';
import type { Descriptor, ImageConfig, ImageManifest, ImageSource } from '../oci/index.js';
import { splitAccelerationLayer } from '../prefetch/accel-layer.js';
import { RegistrySource } from '../registry/image-endpoint.js';
import { chunkDigestsDescriptor } from './chunk-integrity.js';
import type { FetchStats, LayerBlobSource, OpenedLayerBlob } from './layer-blob.js';
import { openLayerStack, type StackOptions } from './layer-stack.js';
import type { RemoteContext } from './remote-context.js';
import { openImageSource } from './source.js';
import { openWritableDevice, type WritableFiles } from './writable.js';

export interface OpenImageOptions {
  /** Put a writable layer in these files over the image (created; with `reuse`, reopened if present). */
  writable?: WritableFiles & { reuse?: boolean };
  /** Record the layers' reads (trace-recorder.ts). */
  record?: StackOptions['record'];
  /** Replay a trace through the layers while the image is open. */
  replay?: StackOptions['replay'];
}

export interface OpenedImage {
  /** The spec as given. */
  name: string;
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
  blobs: OpenedLayerBlob[];
  /** The top layer when it is an acceleration (trace) layer: left out of the stack. */
  accelerationLayer?: Descriptor;
  /** The merged stack of every layer, bottom first (read-only). */
  lower: LayerStack;
  /** What to read (and, when writable, write): `lower`, or the writable layer over it. */
  device: (LayerStack | ComboDevice) & BlockFile;
  /** What came from a registry (zeros for layouts). */
  stats(): FetchStats;
  close(): Promise<void>;
}

export async function openImage(spec: string, ctx: RemoteContext, opts: OpenImageOptions = {}): Promise<OpenedImage> {
  const src = await openImageSource(spec, { client: ctx.client });
  let stack: Awaited<ReturnType<typeof openLayerStack>>;
  let resolved: Awaited<ReturnType<ImageSource['resolve']>>;
  let config: ImageConfig;
  let layers: ReturnType<typeof splitAccelerationLayer<Descriptor>>;
  try {
    resolved = await src.resolve({ platform: ctx.platform });
    config = (await src.getConfig(resolved.manifest.config)).config;
    layers = splitAccelerationLayer(resolved.manifest.layers);
    stack = await openLayerStack(
      layers.lowers.map((d) => layerBlobOf(src, d)),
      ctx,
      { name: spec, checkChain: true, record: opts.record, replay: opts.replay },
    );
  } finally {
    await src.close();
  }
  let device: OpenedImage['device'] = stack.device;
  if (opts.writable) {
    try {
      device = await openWritableDevice(stack.device, opts.writable, { reuse: opts.writable.reuse });
    } catch (e) {
      await stack.close();
      throw e;
    }
  }
  return {
    name: spec,
    manifestDigest: resolved.digest,
    manifest: resolved.manifest,
    config,
    blobs: stack.blobs,
    accelerationLayer: layers.accel,
    lower: stack.device,
    device,
    stats: stack.stats,
    close: async () => {
      await stack.stopPrefetch();
      await device.close();
    },
  };
}

/** Where an image's layer blob is read from: the layout's file, or the registry repository. */
function layerBlobOf(src: ImageSource, d: Descriptor): LayerBlobSource {
  const path = src.localBlobPath?.(d);
  if (path) return { kind: 'file', path };
  if (src instanceof RegistrySource) {
    return { kind: 'registry', repo: src.ref, digest: d.digest, size: d.size, chunkDigests: chunkDigestsOf(src, d) };
  }
  throw new DadiError('EUNSUPPORTED', `${src.name}: cannot read blob ${d.digest} from this kind of source`);
}

/** The layer's chunk digest list descriptor; a malformed annotation only means chunks are checked by CRC. */
function chunkDigestsOf(src: ImageSource, d: Descriptor): Descriptor | undefined {
  try {
    return chunkDigestsDescriptor(d, src.name);
  } catch {
    return undefined;
  }
}
