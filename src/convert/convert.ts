// `convert`: turn an OCI/Docker image (tar layers) into an overlaybd image, as the reference's
// userspace convertor does (image-conventions §2.1). The steps, each in its module: plan (resolve,
// check, find reusable layers), fetch (downloads run ahead, bounded), layer (converted strictly in
// order: layer 0 a fresh writable LSMT layer + mkfs + apply, layer i a writable layer over the
// stack of those before it + apply; each committed as a DADI layer), publish (each layer uploads
// while the next converts; config and manifest last, so a failure leaves the target's tags as they were).

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { warmCompressThreads } from '../format/zfile/index.js';
import { type EndpointOptions, openImageSource, openImageTarget } from '../image/source.js';
import type { Digest } from '../oci/digest.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import type { Platform } from '../oci/manifest.js';
import { formatPlatform } from '../oci/platform.js';
import type { ChunkDigests } from '../p2p/chunk-digests.js';
import { layerTar, startDownloads } from './fetch.js';
import { convertLayer } from './layer.js';
import { layerLabel, withLabel } from './layer-label.js';
import { uuidFromChainId } from './manifest.js';
import { type ConvertPlan, planConversion } from './plan.js';
import { clock, type ProgressEvent } from './progress.js';
import { LayerUploads, publishImage } from './publish.js';
import { defaultWorkDir, LayerRecords } from './record.js';
import type { LayerTar } from './unpack.js';

export { DEFAULT_VSIZE } from './plan.js';

/** Source bytes to convert from which the compression workers are started ahead of the commits. */
const WARM_COMPRESS_AT = 8 << 20;

export interface ConvertOptions extends EndpointOptions {
  /** Platform picked from an index (default: this machine's). */
  platform?: Platform;
  /** The image manifest of the source's index to convert, instead of the platform pick. */
  manifest?: Digest;
  /** Store the converted manifest without moving the target's tag (an index will list it). */
  untagged?: boolean;
  /** OCI media types instead of Docker's (`--oci`). */
  oci?: boolean;
  /** Virtual disk size in bytes (default 64 GiB). */
  vsize?: number;
  /** Work folder: scratch files, committed layers and their records (default ~/.cache/dadi/convert). */
  workDir?: string;
  /** Reuse layers recorded in the work folder (default true). */
  reuse?: boolean;
  /** Source layers downloaded at once (default 4). */
  downloads?: number;
  /** Check each layer's uncompressed sha256 against the config's diff_id (default true). */
  verifyDiffIds?: boolean;
  progress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

export interface ConvertedLayerInfo {
  index: number;
  /** Source layer. */
  source: { digest: Digest; size: number; mediaType: string };
  diffId: Digest;
  chainId: Digest;
  uuid: string;
  digest: Digest;
  size: number;
  /** Taken from the work folder's record instead of converting. */
  reused: boolean;
  /** The layer's chunk digest list blob, published beside it. */
  chunkDigests?: { digest: Digest; size: number };
  seconds: { download: number; apply: number; commit: number; upload: number };
}

export interface ConvertResult {
  source: string;
  target: string;
  platform: string;
  sourceManifest: Digest;
  manifest: { digest: Digest; size: number; mediaType: string };
  config: { digest: Digest; size: number };
  layers: ConvertedLayerInfo[];
  seconds: number;
}

/**
 * Convert `source` (an image spec or an opened ImageSource) into an overlaybd image at `target`.
 *
 * ```ts
 * const r = await convertImage('oci:./hello:amd64', 'oci:./out:hello', { platform: parsePlatform('linux/amd64') });
 * console.log(r.manifest.digest, r.layers.map((l) => l.digest));
 * ```
 */
export async function convertImage(
  source: string | ImageSource,
  target: string | ImageTarget,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  const started = clock();
  const src = typeof source === 'string' ? await openImageSource(source, opts) : source;
  let dst: ImageTarget | undefined;
  try {
    dst = typeof target === 'string' ? await openImageTarget(target, opts) : target;
    return await run(src, dst, opts, started);
  } finally {
    if (typeof target === 'string') await dst?.close();
    if (typeof source === 'string') await src.close();
  }
}

function layerInfos(plan: ConvertPlan): ConvertedLayerInfo[] {
  return plan.layers.map((d, i) => ({
    index: i,
    source: { digest: d.digest, size: d.size, mediaType: d.mediaType },
    diffId: plan.diffIds[i]!,
    chainId: plan.chainIds[i]!,
    uuid: uuidFromChainId(plan.chainIds[i]!),
    digest: plan.reused[i]?.digest ?? ('' as Digest),
    size: plan.reused[i]?.size ?? 0,
    reused: plan.reused[i] !== undefined,
    seconds: { download: 0, apply: 0, commit: 0, upload: 0 },
  }));
}

async function run(src: ImageSource, dst: ImageTarget, opts: ConvertOptions, started: number): Promise<ConvertResult> {
  const emit = opts.progress ?? (() => {});
  const records = new LayerRecords(opts.workDir ?? defaultWorkDir());
  const plan = await planConversion(src, records, opts);
  const { image, config, layers, platform } = plan;
  const n = layers.length;
  emit({
    kind: 'resolved',
    source: src.name,
    manifest: image.digest,
    layers: n,
    platform: config.os && config.architecture ? `${config.os}/${config.architecture}` : formatPlatform(platform),
  });
  const infos = layerInfos(plan);
  const layerEvent = (i: number, phase: 'download' | 'apply' | 'commit' | 'upload', bytes: number, seconds: number) =>
    emit({ kind: 'layer', layer: i, layers: n, phase, digest: layers[i]!.digest, bytes, seconds });

  const scratch = await records.scratch(`job-${process.pid}-${randomBytes(4).toString('hex')}`);
  const abort = new AbortController();
  const onAbort = (): void => abort.abort();
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) abort.abort();

  const downloads = startDownloads(src, layers, scratch, {
    limit: opts.downloads ?? 4,
    skip: (i) => plan.reused[i] !== undefined,
    signal: abort.signal,
    done: (i, seconds) => {
      infos[i]!.seconds.download = seconds;
      layerEvent(i, 'download', layers[i]!.size, seconds);
    },
  });
  for (const p of downloads) p.catch(() => {}); // observed below; avoid unhandled rejections
  // The commits' compression workers load while the first layer downloads and applies (unless
  // the layers are too small for the writer to use them).
  const toConvert = layers.reduce((sum, d, i) => sum + (plan.reused[i] ? 0 : d.size), 0);
  if (toConvert >= WARM_COMPRESS_AT) warmCompressThreads();
  const uploads = new LayerUploads(dst, () => abort.abort());
  // Each layer's tar is opened once its download is there; the next layer's starts decoding (on its
  // worker, bounded) while this one is applied.
  const tars = new Map<number, Promise<LayerTar>>();
  const openTar = (i: number): Promise<LayerTar> => {
    let t = tars.get(i);
    if (!t) {
      const name = `${src.name}: ${layerLabel(i, n, layers[i]!)}`;
      t = downloads[i]!.then((downloaded) => layerTar(src, layers[i]!, downloaded, name, abort.signal));
      t.catch(() => {}); // observed by the layer's turn
      tars.set(i, t);
    }
    return t;
  };

  try {
    const committed: string[] = [];
    for (let i = 0; i < n; i++) {
      abort.signal.throwIfAborted();
      const d = layers[i]!;
      const label = layerLabel(i, n, d);
      const info = infos[i]!;
      const rec = plan.reused[i];
      let path: string;
      let chunks: ChunkDigests | undefined;
      if (rec) {
        path = records.blobPath(rec.digest);
        emit({ kind: 'layer', layer: i, layers: n, phase: 'reused', digest: d.digest, bytes: rec.size });
      } else {
        const downloaded = await downloads[i]!;
        const tar = await openTar(i);
        if (i + 1 < n && !plan.reused[i + 1]) void openTar(i + 1);
        try {
          const out = await convertLayer(i, tar, committed, scratch, records, {
            label: `${src.name}: ${label}`,
            chainId: plan.chainIds[i]!,
            parentChainId: plan.chainIds[i - 1],
            diffId: plan.diffIds[i]!,
            vsize: plan.vsize,
            settings: plan.settings,
            verifyDiffId: opts.verifyDiffIds ?? true,
            emit: (phase, bytes, seconds) => layerEvent(i, phase, bytes, seconds),
          });
          path = out.path;
          chunks = out.chunks;
          info.digest = out.digest;
          info.size = out.size;
          info.seconds.apply = out.seconds.apply;
          info.seconds.commit = out.seconds.commit;
        } catch (e) {
          throw withLabel(e, `${src.name}: ${label}`, d.digest);
        }
        if (downloaded) await rm(downloaded, { force: true });
      }
      committed.push(path);
      uploads.add(
        path,
        { digest: info.digest, size: info.size },
        label,
        (seconds, chunkDigests) => {
          info.seconds.upload = seconds;
          info.chunkDigests = chunkDigests;
          emit({ kind: 'layer', layer: i, layers: n, phase: 'upload', digest: d.digest, bytes: info.size, seconds });
        },
        chunks,
      );
    }
    await uploads.done();

    const published = await publishImage(dst, config, infos, {
      oci: !!opts.oci,
      untagged: !!opts.untagged,
      annotations: image.manifest.annotations,
    });
    emit({ kind: 'manifest', target: dst.name, digest: published.manifest.digest });
    return {
      source: src.name,
      target: dst.name,
      platform: `${config.os ?? platform.os}/${config.architecture ?? platform.architecture}${config.variant ? `/${config.variant}` : ''}`,
      sourceManifest: image.digest,
      manifest: published.manifest,
      config: published.config,
      layers: infos,
      seconds: clock() - started,
    };
  } catch (e) {
    abort.abort();
    await Promise.allSettled(downloads);
    await uploads.settled();
    // An upload that failed while the next layer converted aborted the loop: report its error.
    throw uploads.error ?? e;
  } finally {
    for (const t of tars.values()) await t.then((x) => x.close()).catch(() => {});
    opts.signal?.removeEventListener('abort', onAbort);
    await rm(scratch, { recursive: true, force: true });
  }
}
