// The first step of a conversion: resolve the source to one image, check that every layer can be
// converted (before any work), and look up which layers the work folder already holds converted
// with the same settings.

import { DadiError } from '../errors.js';
import { MAX_STACK_LAYERS } from '../format/lsmt/constants.js';
import { DADI_LAYER_OUTPUT } from '../image/layer-output.js';
import type { Digest } from '../oci/digest.js';
import type { ImageSource, ResolvedManifest } from '../oci/image-source.js';
import type { Descriptor, ImageConfig, Platform } from '../oci/manifest.js';
import { isGzipLayerType, isTarLayerType, MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import { hostPlatform } from '../oci/platform.js';
import { layerLabel } from './layer-label.js';
import { chainIds } from './manifest.js';
import type { LayerRecord, LayerRecords } from './record.js';

export const DEFAULT_VSIZE = 64 * 1024 ** 3;

/**
 * The record key of the layer output settings (`obd1-zstd-4k`): a converted layer is reused only
 * when it was made with the same ones.
 */
const SETTINGS_VERSION = `obd1-${DADI_LAYER_OUTPUT.zfile.algorithm}-${DADI_LAYER_OUTPUT.zfile.blockSize / 1024}k`;

export interface ConvertPlan {
  /** The platform asked for (the machine's when none was). */
  platform: Platform;
  vsize: number;
  image: ResolvedManifest;
  config: ImageConfig;
  layers: readonly Descriptor[];
  diffIds: readonly Digest[];
  chainIds: readonly Digest[];
  /** The record key of the settings; a layer converted with other settings is not reused. */
  settings: string;
  /** Per layer: its record when already converted (and reuse is on). */
  reused: ReadonlyArray<LayerRecord | undefined>;
}

export interface PlanOptions {
  platform?: Platform;
  /** The image manifest of the source's index to convert, instead of the platform pick. */
  manifest?: Digest;
  vsize?: number;
  /** Reuse layers recorded in `records` (default true). */
  reuse?: boolean;
}

/** Accept only layer types we can apply (tar, tar+gzip, tar+zstd), refusing overlaybd and foreign layers. */
function checkSourceLayer(d: Descriptor, label: string): void {
  if (d.annotations?.[OverlaybdAnnotation.blobDigest] !== undefined) {
    throw new DadiError('EINVAL', `${label}: already an overlaybd layer (the source is a converted image)`);
  }
  const t = d.mediaType;
  if (isTarLayerType(t) || isGzipLayerType(t) || t === MediaType.ociLayerZstd) return;
  throw new DadiError('EUNSUPPORTED', `${label}: layer media type ${t} cannot be converted`);
}

/** Resolve and check the source image; find the layers `records` holds converted already. */
export async function planConversion(
  src: ImageSource,
  records: LayerRecords,
  opts: PlanOptions = {},
): Promise<ConvertPlan> {
  const platform = opts.platform ?? hostPlatform();
  const vsize = opts.vsize ?? DEFAULT_VSIZE;
  if (!Number.isSafeInteger(vsize) || vsize < 64 << 20 || vsize % 4096 !== 0) {
    throw new DadiError('EINVAL', `vsize ${vsize}: must be a multiple of 4096 of at least 64 MiB`);
  }
  const image = await src.resolve(opts.manifest ? { digest: opts.manifest } : { platform });
  const { config } = await src.getConfig(image.manifest.config);
  const layers = image.manifest.layers;
  const n = layers.length;
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== n) {
    throw new DadiError(
      'EFORMAT',
      `${src.name}: the config lists ${diffIds.length} diff_ids for ${n} layers (manifest ${image.digest})`,
    );
  }
  if (n === 0) throw new DadiError('EFORMAT', `${src.name}: the image has no layers`);
  const cfgType = image.manifest.config.mediaType;
  if (cfgType !== MediaType.dockerConfig && cfgType !== MediaType.ociConfig) {
    throw new DadiError('EUNSUPPORTED', `${src.name}: config media type ${cfgType} is not an image config`);
  }
  if (n > MAX_STACK_LAYERS) {
    throw new DadiError(
      'EUNSUPPORTED',
      `${src.name}: ${n} layers (an overlaybd stack holds at most ${MAX_STACK_LAYERS})`,
    );
  }
  layers.forEach((d, i) => {
    checkSourceLayer(d, `${src.name}: ${layerLabel(i, n, d)}`);
  });
  const chains = chainIds(diffIds);
  const settings = `${SETTINGS_VERSION}-${vsize}`;
  const reused: Array<LayerRecord | undefined> = [];
  for (let i = 0; i < n; i++)
    reused.push((opts.reuse ?? true) ? await records.lookup(chains[i]!, settings) : undefined);
  return { platform, vsize, image, config, layers, diffIds, chainIds: chains, settings, reused };
}
