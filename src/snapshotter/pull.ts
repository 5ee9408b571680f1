// `dadi pull --containerd-address`: put a DADI image into containerd so that it starts lazily with
// the dadi snapshotter. containerd 1.6's own pull sends none of the labels a remote snapshotter
// needs, so this does the unpack's bookkeeping itself: the manifest and config go into the content
// store, each layer is "prepared" through containerd's snapshots service with the layer's
// annotations and the image reference as labels (the snapshotter answers ALREADY_EXISTS and
// containerd records the committed layer), and the image record points at the manifest. No layer
// blob is downloaded; the daemon reads what containers touch, when they touch it.

import { randomBytes } from 'node:crypto';
import { chainIds } from '../convert/manifest.js';
import { DadiError } from '../errors.js';
import { type Digest, type ImageConfig, isTarLayerType, OverlaybdAnnotation } from '../oci/index.js';
import { glibcDataFiles, glibcStartFiles } from '../prefetch/glibc-files.js';
import { formatReference, parseReference, type RegistryClient, type ResolvedImage } from '../registry/index.js';
import type { LaunchRequest } from '../runtime/protocol.js';
import { ContainerdClient, ContainerdError } from './containerd-client.js';
import { Label, remoteLayerOf } from './labels.js';
import type { RemoteLayer } from './store.js';

export interface PullOptions {
  /**
   * The resolve of `ref` and its config's fetch already under way, made with the same client (the
   * CLI's hint: pull-service.ts headStart); what failed, the pull does anew.
   */
  headStart?: PullHeadStart;
  /** containerd's socket. */
  address: string;
  namespace?: string;
  /** A client of containerd at `address` to use (and leave open), as the snapshotter keeps one. */
  connection?: ContainerdClient;
  /** The snapshotter's name in containerd's configuration (default `dadi`). */
  snapshotter?: string;
  /**
   * Told the image's DADI layers (bottom first, the acceleration layer left out) as soon as the
   * manifest is in, before containerd is asked anything: the snapshotter starts opening them.
   */
  onLayersKnown?: (layers: RemoteLayer[]) => void;
  /**
   * Told, once the config is in, the image's top layer snapshot (its chain id) and the files any
   * start of it reads first (glibc's loader, libc and the data files its Env names; glibc-files.ts):
   * the snapshotter fetches them on the image's device, whose mount the top layer started.
   */
  onLaunchKnown?: (topChainId: string, launch: LaunchRequest) => void;
  /**
   * Told the image's layer snapshots (bottom first) as soon as their chain ids are known, before
   * containerd is asked for them: the snapshotter in this process records them itself (one save,
   * and the image's mount starts), so that containerd's Prepare of each finds it. Awaited before
   * the first Prepare; it should not reject (the Prepares then decide).
   */
  recordLayers?: (layers: RemoteLayerSnapshot[], launch?: LaunchRequest) => Promise<void>;
  /** Told after each layer snapshot is prepared (`done` of `total`), for progress bars. */
  onLayer?: (done: number, total: number) => void;
  /** Told as each step ends, with its milliseconds (`dadi pull --timings`). */
  onStep?: (step: string, ms: number) => void;
}

/** A pull's first two fetches, started before its request came (pullHeadStart). */
export interface PullHeadStart {
  image: Promise<ResolvedImage>;
  config: Promise<Buffer>;
}

/** A DADI layer's snapshot as containerd's unpacker asks for it: chain id, parent and Prepare labels. */
export interface RemoteLayerSnapshot {
  chainId: string;
  parent: string;
  labels: Record<string, string>;
}

export interface PullResult {
  name: string;
  manifestDigest: string;
  layers: number;
  /** Bytes fetched from the registry: the manifest(s) and the config, never a layer. */
  registryBytes: number;
}

const MAX_CONFIG_BYTES = 16 << 20;

export async function pullIntoContainerd(ref: string, client: RegistryClient, o: PullOptions): Promise<PullResult> {
  const r = parseReference(ref);
  const name = imageName(r);
  const snapshotter = o.snapshotter ?? 'dadi';
  let mark = performance.now();
  const step = (name: string) => {
    const t = performance.now();
    o.onStep?.(name, Math.round(t - mark));
    mark = t;
  };
  // Whether the image came from the head start (its config's fetch is then this image's too).
  let headStarted = false;
  const resolving = o.headStart
    ? o.headStart.image.then(
        (img) => {
          headStarted = true;
          return img;
        },
        () => client.resolveImage(r),
      )
    : client.resolveImage(r);
  resolving.catch(() => {});
  // containerd's API definitions load (CPU) while the manifest request is out, and the lease is
  // taken while the registry answers.
  await new Promise((res) => setImmediate(res));
  const namespace = o.namespace ?? 'default';
  const ctrd = o.connection ? o.connection.inNamespace(namespace) : new ContainerdClient(o.address, namespace);
  const leased = ctrd.beginLease(`dadi-pull-${randomBytes(8).toString('hex')}`);
  leased.catch(() => {});
  let recording: Promise<boolean> | undefined;
  try {
    const img = await resolving;
    step('resolve');
    const layers = img.manifest.layers;
    const notDadi = layers.findIndex((l) => !isDadiLayer(l));
    if (notDadi >= 0) {
      throw new DadiError(
        'EUNSUPPORTED',
        `${name}: layer ${notDadi} (${layers[notDadi]!.digest}) is not a DADI layer; pull ordinary images with ctr pull --snapshotter ${snapshotter}`,
      );
    }
    const fetchConfig = () => client.fetchBlob(r, img.manifest.config.digest, { maxSize: MAX_CONFIG_BYTES });
    const configFetch = headStarted ? o.headStart!.config.catch(fetchConfig) : fetchConfig();
    configFetch.catch(() => {});
    // Told by the head start already, as the manifest came.
    if (!headStarted) o.onLayersKnown?.(dadiLayersOf(name, layers));
    // The layer snapshots start the image's mount (the top one mounts ahead): they go as soon as
    // their chain ids are known, beside the config's fetch and the content writes, not after them.
    const predicted = diffIdsOfUncompressed(layers);
    const snapshots = async (chains: string[]) => {
      const specs = layers.map((layer, i) => ({
        chainId: chains[i]!,
        parent: chains[i - 1] ?? '',
        labels: remoteLayerLabels(name, chains[i]!, layer.annotations ?? {}, i === layers.length - 1),
      }));
      // containerd reads the user database between the Prepare and the task's creation, whatever
      // the image: those files are fetched during the mount, not after it (the rest of the launch
      // files, known with the config, follow the mount: fetched during it they slow it down).
      await Promise.all([leased, o.recordLayers?.(specs, { files: CONTAINERD_CREATE_FILES, readThrough: true })]);
      for (const [i, spec] of specs.entries()) {
        await prepareRemoteLayer(ctrd, snapshotter, name, spec);
        o.onLayer?.(i + 1, layers.length);
      }
      step('layer snapshots');
    };
    const early = predicted ? snapshots(chainIds(predicted)) : undefined;
    early?.catch(() => {});
    // The manifest goes into the content store while the config is fetched (containerd commits
    // each write with an fsync, one after another): only the config's write is left after it.
    const source = { [`containerd.io/distribution.source.${r.registry}`]: r.repository };
    const manifestWrite = leased.then(() =>
      ctrd.writeContent(img.digest, img.bytes, {
        ...source,
        'containerd.io/gc.ref.content.config': img.manifest.config.digest,
      }),
    );
    manifestWrite.catch(() => {});
    // The image record goes beside the config's fetch, not after the content and snapshots it
    // names: containerd checks neither on Create, `ctr run` comes only after the answer, and CRI
    // (which reads the config of an image it is told of, in its namespace) tries again later. True
    // when created here (removed again if the pull fails), false when the name was taken: that
    // image is pointed at this one only once everything is in.
    const image = { name, target: { media_type: img.mediaType, digest: img.digest, size: img.bytes.length } };
    recording = leased.then(() =>
      ctrd.call('images', 'Create', { image }).then(
        () => true,
        (e) => {
          if (!(e instanceof ContainerdError && e.code === 'EEXIST')) throw e;
          return false;
        },
      ),
    );
    recording.catch(() => {});
    const configBytes = await configFetch;
    const config = JSON.parse(configBytes.toString()) as ImageConfig;
    step('config');
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== layers.length) {
      throw new DadiError('EFORMAT', `${name}: config lists ${diffIds.length} diff_ids for ${layers.length} layers`);
    }
    const mismatch = predicted ? diffIds.findIndex((d, i) => d !== predicted[i]) : -1;
    if (mismatch >= 0) {
      throw new DadiError(
        'EFORMAT',
        `${name}: config diff_id ${mismatch} is ${diffIds[mismatch]}, but layer ${mismatch} is an uncompressed tar with digest ${predicted![mismatch]}`,
      );
    }
    const chains = chainIds(diffIds);
    o.onLaunchKnown?.(chains[chains.length - 1]!, imageLaunchFiles(config));
    await leased;
    step('lease');
    const content = Promise.all([
      ctrd.writeContent(img.manifest.config.digest, configBytes, {
        ...source,
        // What keeps the layer snapshots alive as long as the image is (containerd's GC).
        [`containerd.io/gc.ref.snapshot.${snapshotter}`]: chains[chains.length - 1]!,
      }),
      manifestWrite,
    ]);
    await Promise.all([content.then(() => step('content')), recording, early ?? snapshots(chains)]);
    step('image record');
    if (!(await recording)) {
      await ctrd.call('images', 'Update', { image, update_mask: { paths: ['target'] } });
      step('image update');
    }
    return {
      name,
      manifestDigest: img.digest,
      layers: layers.length,
      registryBytes: img.bytes.length + configBytes.length + img.indexes.reduce((n, m) => n + m.bytes.length, 0),
    };
  } catch (e) {
    if (await recording?.catch(() => false)) await ctrd.call('images', 'Delete', { name }).catch(() => {});
    throw e;
  } finally {
    // The lease ends after the answer, not before it: the image record now keeps the content and
    // the snapshots, and ending it is one more of containerd's database commits (an fsync), which
    // `ctr run` need not wait for. A lease left by a failed end expires (gc.expire, an hour).
    void leased
      .then(() => ctrd.endLease())
      .catch(() => {})
      .finally(() => ctrd.close());
  }
}

/**
 * Start a pull's first fetches before its request comes (the CLI's hint): the image's resolve, then
 * its config's fetch, and tell `onLayersKnown` its DADI layers as the manifest is in (when every
 * layer is one; the pull itself refuses the image otherwise). Side-effect free: containerd is
 * not asked anything.
 */
export function pullHeadStart(
  ref: string,
  client: RegistryClient,
  onLayersKnown?: (layers: RemoteLayer[]) => void,
): PullHeadStart {
  const r = parseReference(ref);
  const image = client.resolveImage(r);
  const config = image.then((img) => {
    if (img.manifest.layers.every(isDadiLayer)) onLayersKnown?.(dadiLayersOf(imageName(r), img.manifest.layers));
    return client.fetchBlob(r, img.manifest.config.digest, { maxSize: MAX_CONFIG_BYTES });
  });
  image.catch(() => {});
  config.catch(() => {});
  return { image, config };
}

/** A layer the reference's converter made: it carries the overlaybd blob annotations. */
function isDadiLayer(l: { annotations?: Record<string, string> }): boolean {
  return !!l.annotations?.[OverlaybdAnnotation.blobDigest];
}

/** The name containerd records an image under: the reference, with `latest` when it names no tag or digest. */
function imageName(r: ReturnType<typeof parseReference>): string {
  return formatReference(r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r);
}

/** An image's DADI layers (bottom first) as the snapshotter opens them: the acceleration layer left out. */
function dadiLayersOf(name: string, layers: readonly { annotations?: Record<string, string> }[]): RemoteLayer[] {
  return layers
    .map((l) => remoteLayerOf(layerLabels(name, l.annotations ?? {})))
    .filter((l): l is RemoteLayer => l !== undefined && !l.acceleration);
}

/**
 * What containerd reads in a container's rootfs before the container starts, whatever the image:
 * `ctr run` and CRI look up the user's supplementary groups in /etc/group (and a numeric user's
 * name in /etc/passwd) through a temporary mount of the new snapshot (oci.WithAdditionalGIDs,
 * WithUser), between the Prepare and the task's creation.
 */
const CONTAINERD_CREATE_FILES = ['/etc/passwd', '/etc/group'];

/**
 * What any start of the image through containerd reads first whatever its command (`ctr run` may
 * name any): containerd's own look at the user database, then the dynamic loader, its cache and libc
 * for the config's architecture, and glibc's data files under the config's Env. Paths the image
 * lacks are skipped by the prefetch.
 */
export function imageLaunchFiles(config: ImageConfig): LaunchRequest {
  const env = (config.config as { Env?: unknown } | undefined)?.Env;
  const list = Array.isArray(env) ? env.filter((e): e is string => typeof e === 'string') : [];
  return {
    files: [...CONTAINERD_CREATE_FILES, ...glibcStartFiles(config.architecture), ...glibcDataFiles(list)],
    // The start comes a while after the mount (`ctr run`'s own start, the Prepare, the shim): time
    // for the kernel to read the fetched files in, so that the start's reads of them need no FUSE round trip.
    readThrough: true,
  };
}

/**
 * The diff_ids of the layers when every one is an uncompressed tar (a native DADI layer): an
 * uncompressed layer's diff_id is its digest, so its chain is known before the config arrives.
 * Undefined when a layer is compressed (a TurboOCI layer: its diff_id is in the config only).
 */
export function diffIdsOfUncompressed(layers: readonly { mediaType: string; digest: Digest }[]): Digest[] | undefined {
  return layers.every((l) => isTarLayerType(l.mediaType)) ? layers.map((l) => l.digest) : undefined;
}

/** A layer's Prepare labels: what containerd's unpacker passes on, and on the top layer our mount ahead. */
function remoteLayerLabels(
  image: string,
  chainId: string,
  annotations: Record<string, string>,
  top: boolean,
): Record<string, string> {
  const labels: Record<string, string> = { [Label.targetRef]: chainId, ...layerLabels(image, annotations) };
  if (top) labels[Label.mountAhead] = 'yes';
  return labels;
}

/** The labels containerd's unpacker passes on for a layer: its snapshot annotations and the image reference. */
function layerLabels(image: string, annotations: Record<string, string>): Record<string, string> {
  const labels: Record<string, string> = { [Label.imageRef]: image };
  for (const [k, v] of Object.entries(annotations)) if (k.startsWith('containerd.io/snapshot/')) labels[k] = v;
  return labels;
}

/**
 * What containerd's unpacker does for a layer, with the labels it would pass on: a Prepare keyed
 * for extraction whose target is the chain id. The dadi snapshotter commits it at once and says
 * ALREADY_EXISTS; a snapshotter that instead hands out a folder to unpack into is not ours.
 */
async function prepareRemoteLayer(
  ctrd: ContainerdClient,
  snapshotter: string,
  image: string,
  { chainId, parent, labels }: RemoteLayerSnapshot,
): Promise<void> {
  // A layer containerd already has is refused by containerd itself (ALREADY_EXISTS): no Stat first.
  const key = `extract-${randomBytes(6).toString('hex')}-${chainId}`;
  try {
    await ctrd.call('snapshots', 'Prepare', { snapshotter, key, parent, labels });
  } catch (e) {
    if (e instanceof ContainerdError && e.code === 'EEXIST') return;
    throw e;
  }
  await ctrd.call('snapshots', 'Remove', { snapshotter, key }).catch(() => {});
  throw new DadiError(
    'EUNSUPPORTED',
    `${image}: snapshotter ${snapshotter} did not take layer ${chainId} as a remote layer (is it dadi snapshotter?)`,
  );
}
