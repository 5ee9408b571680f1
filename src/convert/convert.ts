// `convert`: turn an OCI/Docker image (tar layers) into an overlaybd image, as the reference's
// userspace convertor does (image-conventions §2.1). Layers download in parallel (bounded), are
// converted strictly in order — layer 0: a fresh writable LSMT layer + mkfs + apply; layer i: a
// writable layer over the stack of the layers committed so far + apply — and each is committed
// as ZFile (LZ4, 4 KiB, CRC) in the one-file tar, then uploaded while the next one converts.
// The config and manifest go last: a failure anywhere leaves the target's tags untouched (layer
// blobs already uploaded stay, unreferenced, for the registry's garbage collector).

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileSink } from '../blockfile/sink.js';
import { DadiError } from '../errors.js';
import { applyLayer, decompress, Ext4, mkfs } from '../ext4/index.js';
import { ComboDevice, LayerStack, WritableLayer } from '../format/lsmt/index.js';
import { wrapLayerOutput } from '../image/layer-output.js';
import { openLayerFile } from '../image/open-layer.js';
import { type EndpointOptions, openImageSource, openImageTarget } from '../image/source.js';
import { type Digest, Digester } from '../oci/digest.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import type { Descriptor, Platform } from '../oci/manifest.js';
import { isGzipLayerType, isTarLayerType, MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import { formatPlatform, hostPlatform } from '../oci/platform.js';
import { chainIds, convertedConfig, convertedManifest, outputMediaTypes, uuidFromChainId } from './manifest.js';
import type { ProgressEvent } from './progress.js';
import { defaultWorkDir, digestFile, type LayerRecord, LayerRecords } from './record.js';

export const DEFAULT_VSIZE = 64 * 1024 ** 3;

export interface ConvertOptions extends EndpointOptions {
  /** Platform picked from an index (default: this machine's). */
  platform?: Platform;
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

const SETTINGS_VERSION = 'obd1-lz4-4k';

/** A pass-through async iterable that sees every chunk once; its consumer stopping early does not close the source. */
class Tap implements AsyncIterable<Uint8Array> {
  private readonly it: AsyncIterator<Uint8Array>;
  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly onChunk: (c: Uint8Array) => void,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async () => {
        const r = await this.it.next();
        if (!r.done) this.onChunk(r.value);
        return r;
      },
      return: async () => ({ done: true, value: undefined }),
    };
  }
  /** Read (and see) whatever the consumer left. */
  async drain(): Promise<void> {
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      this.onChunk(r.value);
    }
  }
  async close(): Promise<void> {
    await this.it.return?.().catch(() => undefined);
  }
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

function layerLabel(i: number, n: number, d: Descriptor): string {
  return `layer ${i + 1}/${n} (${d.digest})`;
}

/** Give an error the layer's name unless it names it already. */
function withLabel(e: unknown, label: string, digest: string): DadiError {
  if (e instanceof DadiError) {
    return e.message.includes(digest) ? e : new DadiError(e.code, `${label}: ${e.message}`, { cause: e });
  }
  const msg = (e as Error)?.message ?? String(e);
  return new DadiError('EFORMAT', `${label}: ${msg}`, { cause: e });
}

/** Run `fn` over `items` with at most `limit` at once; results are promises in item order. */
function bounded<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R>[] {
  let active = 0;
  const waiting: Array<() => void> = [];
  const acquire = async (): Promise<void> => {
    if (active < limit) {
      active++;
      return;
    }
    await new Promise<void>((r) => waiting.push(r));
  };
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  return items.map(async (x, i) => {
    await acquire();
    try {
      return await fn(x, i);
    } finally {
      release();
    }
  });
}

const now = (): number => performance.now() / 1000;

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
  const started = now();
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

async function run(src: ImageSource, dst: ImageTarget, opts: ConvertOptions, started: number): Promise<ConvertResult> {
  const emit = opts.progress ?? (() => {});
  const platform = opts.platform ?? hostPlatform();
  const vsize = opts.vsize ?? DEFAULT_VSIZE;
  if (!Number.isSafeInteger(vsize) || vsize < 64 << 20 || vsize % 4096 !== 0) {
    throw new DadiError('EINVAL', `vsize ${vsize}: must be a multiple of 4096 of at least 64 MiB`);
  }
  const img = await src.resolve({ platform });
  const { config } = await src.getConfig(img.manifest.config);
  const layers = img.manifest.layers;
  const n = layers.length;
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== n) {
    throw new DadiError(
      'EFORMAT',
      `${src.name}: the config lists ${diffIds.length} diff_ids for ${n} layers (manifest ${img.digest})`,
    );
  }
  if (n === 0) throw new DadiError('EFORMAT', `${src.name}: the image has no layers`);
  const cfgType = img.manifest.config.mediaType;
  if (cfgType !== MediaType.dockerConfig && cfgType !== MediaType.ociConfig) {
    throw new DadiError('EUNSUPPORTED', `${src.name}: config media type ${cfgType} is not an image config`);
  }
  if (n > 255) throw new DadiError('EUNSUPPORTED', `${src.name}: ${n} layers (an overlaybd stack holds at most 255)`);
  layers.forEach((d, i) => {
    checkSourceLayer(d, `${src.name}: ${layerLabel(i, n, d)}`);
  });
  emit({
    kind: 'resolved',
    source: src.name,
    manifest: img.digest,
    layers: n,
    platform: config.os && config.architecture ? `${config.os}/${config.architecture}` : formatPlatform(platform),
  });

  const chains = chainIds(diffIds);
  const settings = `${SETTINGS_VERSION}-${vsize}`;
  const records = new LayerRecords(opts.workDir ?? defaultWorkDir());
  const reuse = opts.reuse ?? true;
  const planned: Array<LayerRecord | undefined> = [];
  for (let i = 0; i < n; i++) planned.push(reuse ? await records.lookup(chains[i]!, settings) : undefined);

  const scratch = await records.scratch(`job-${process.pid}-${randomBytes(4).toString('hex')}`);
  const abort = new AbortController();
  const onAbort = (): void => abort.abort();
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) abort.abort();
  const local = typeof src.localBlobPath === 'function';
  const infos: ConvertedLayerInfo[] = layers.map((d, i) => ({
    index: i,
    source: { digest: d.digest, size: d.size, mediaType: d.mediaType },
    diffId: diffIds[i]!,
    chainId: chains[i]!,
    uuid: uuidFromChainId(chains[i]!),
    digest: planned[i]?.digest ?? ('' as Digest),
    size: planned[i]?.size ?? 0,
    reused: planned[i] !== undefined,
    seconds: { download: 0, apply: 0, commit: 0, upload: 0 },
  }));

  // Downloads (registry sources): bounded, in layer order, into the scratch folder.
  const downloads = bounded(layers, Math.max(1, opts.downloads ?? 4), async (d, i) => {
    if (planned[i] || local) return undefined;
    abort.signal.throwIfAborted();
    const t = now();
    const path = join(scratch, `${i}.src`);
    try {
      await pipeline(Readable.from(src.blobStream(d, { signal: abort.signal })), createWriteStream(path), {
        signal: abort.signal,
      });
    } catch (e) {
      throw withLabel(e, `${src.name}: ${layerLabel(i, n, d)}`, d.digest);
    }
    infos[i]!.seconds.download = now() - t;
    emit({
      kind: 'layer',
      layer: i,
      layers: n,
      phase: 'download',
      digest: d.digest,
      bytes: d.size,
      seconds: infos[i]!.seconds.download,
    });
    return path;
  });
  for (const p of downloads) p.catch(() => {}); // observed below; avoid unhandled rejections

  const uploads: Promise<void>[] = [];
  let uploadError: unknown;
  const upload = async (i: number, path: string): Promise<void> => {
    const info = infos[i]!;
    const t = now();
    try {
      await dst.putBlobFile(path, { digest: info.digest, size: info.size });
    } catch (e) {
      throw withLabel(e, `${dst.name}: upload of ${layerLabel(i, n, layers[i]!)}`, info.digest);
    }
    info.seconds.upload = now() - t;
    emit({
      kind: 'layer',
      layer: i,
      layers: n,
      phase: 'upload',
      digest: info.source.digest,
      bytes: info.size,
      seconds: info.seconds.upload,
    });
  };

  try {
    const committed: string[] = [];
    for (let i = 0; i < n; i++) {
      abort.signal.throwIfAborted();
      const d = layers[i]!;
      const label = layerLabel(i, n, d);
      const rec = planned[i];
      let path: string;
      if (rec) {
        path = records.blobPath(rec.digest);
        emit({ kind: 'layer', layer: i, layers: n, phase: 'reused', digest: d.digest, bytes: rec.size });
      } else {
        const downloaded = await downloads[i]!;
        const stream: AsyncIterable<Uint8Array> = downloaded
          ? createReadStream(downloaded, { highWaterMark: 1 << 20 })
          : src.blobStream(d, { signal: abort.signal });
        try {
          path = await convertLayer(i, stream, committed, scratch, records, {
            label: `${src.name}: ${label}`,
            chainId: chains[i]!,
            parentChainId: chains[i - 1],
            diffId: diffIds[i]!,
            vsize,
            settings,
            verifyDiffId: opts.verifyDiffIds ?? true,
            info: infos[i]!,
            emit: (phase, bytes, seconds) =>
              emit({ kind: 'layer', layer: i, layers: n, phase, digest: d.digest, bytes, seconds }),
          });
        } catch (e) {
          throw withLabel(e, `${src.name}: ${label}`, d.digest);
        }
        if (downloaded) await rm(downloaded, { force: true });
      }
      committed.push(path);
      const up = upload(i, path);
      up.catch((e) => {
        uploadError ??= e;
        abort.abort();
      });
      uploads.push(up);
    }
    await Promise.all(uploads);

    // Config, then manifest: only now does anything become visible under a tag.
    const types = outputMediaTypes(!!opts.oci);
    const configBytes = convertedConfig(
      config,
      infos.map((l) => l.digest),
    );
    const configDesc = await dst.putBlob(configBytes);
    const manifestBytes = convertedManifest(configDesc, infos, {
      oci: !!opts.oci,
      annotations: img.manifest.annotations,
    });
    const manifestDigest = await dst.putManifest(manifestBytes, types.manifest);
    emit({ kind: 'manifest', target: dst.name, digest: manifestDigest });
    return {
      source: src.name,
      target: dst.name,
      platform: `${config.os ?? platform.os}/${config.architecture ?? platform.architecture}${config.variant ? `/${config.variant}` : ''}`,
      sourceManifest: img.digest,
      manifest: { digest: manifestDigest, size: manifestBytes.length, mediaType: types.manifest },
      config: configDesc,
      layers: infos,
      seconds: now() - started,
    };
  } catch (e) {
    abort.abort();
    await Promise.allSettled([...downloads, ...uploads]);
    // An upload that failed while the next layer converted aborted the loop: report its error.
    throw uploadError ?? e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await rm(scratch, { recursive: true, force: true });
  }
}

interface LayerJob {
  label: string;
  chainId: Digest;
  parentChainId: Digest | undefined;
  diffId: Digest;
  vsize: number;
  settings: string;
  verifyDiffId: boolean;
  info: ConvertedLayerInfo;
  emit: (phase: 'apply' | 'commit', bytes: number, seconds: number) => void;
}

/**
 * Convert one layer on top of the committed ones (`lowers`, bottom first): create, [mkfs,]
 * apply, commit; returns the committed blob's path in the record store.
 */
async function convertLayer(
  i: number,
  stream: AsyncIterable<Uint8Array>,
  lowers: readonly string[],
  scratch: string,
  records: LayerRecords,
  job: LayerJob,
): Promise<string> {
  const uuid = uuidFromChainId(job.chainId);
  const parentUuid = job.parentChainId ? uuidFromChainId(job.parentChainId) : undefined;
  const dir = join(scratch, `layer-${i}`);
  await mkdir(dir, { recursive: true });
  const rw = await WritableLayer.create(join(dir, 'data'), join(dir, 'index'), {
    virtualSize: i === 0 ? job.vsize : 0,
    uuid,
    ...(parentUuid ? { parentUuid } : {}),
  });
  let device: WritableLayer | ComboDevice = rw;
  const out = join(dir, 'overlaybd.commit');
  const raw = new Tap(stream, () => {});
  const plain = new Digester();
  const tar = new Tap(decompress(raw, job.label), (c) => plain.update(c));
  let commitStart = 0;
  try {
    if (i === 0) await mkfs(rw, { size: job.vsize });
    else {
      const sealed = [];
      try {
        for (const p of lowers) sealed.push(await openLayerFile(p));
      } catch (e) {
        await Promise.all(sealed.map((l) => l.close()));
        throw e;
      }
      device = await ComboDevice.open(rw, LayerStack.fromLayers(sealed));
    }
    const t = now();
    const fs = await Ext4.open(device);
    await applyLayer(fs, tar, { name: job.label });
    await fs.close();
    await tar.drain(); // the rest of the stream: the tar's end padding; checks the blob digest
    if (job.verifyDiffId) {
      const got = plain.digest();
      if (got !== job.diffId) {
        throw new DadiError(
          'ECORRUPT',
          `${job.label}: uncompressed content hashes to ${got}, the config's diff_id is ${job.diffId}`,
        );
      }
    }
    job.info.seconds.apply = now() - t;
    job.emit('apply', plain.size, job.info.seconds.apply);

    commitStart = now();
    const sink = wrapLayerOutput(
      await FileSink.create(out),
      { tar: true, zfile: { algorithm: 'lz4', blockSize: 4096 } },
      0o100644,
    );
    await device.commit(sink, { uuid, ...(parentUuid ? { parentUuid } : {}) });
  } finally {
    await raw.close();
    await device.close();
  }
  const { digest, size } = await digestFile(out);
  job.info.digest = digest;
  job.info.size = size;
  job.info.seconds.commit = now() - commitStart;
  const path = await records.save({ chainId: job.chainId, settings: job.settings, digest, size, uuid }, out);
  await rm(dir, { recursive: true, force: true });
  job.emit('commit', size, job.info.seconds.commit);
  return path;
}
