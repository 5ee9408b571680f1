// containerd's snapshotter model over dadi: committed, active and view snapshots in a metadata
// store, ordinary layers as overlayfs directories, and DADI layers as snapshots committed without
// data (containerd is told ALREADY_EXISTS and skips the download) whose stack is mounted lazily by
// the device set (the dadi daemon) when a container's rootfs needs it. A container's rootfs is an
// overlayfs whose upper directory is the container's own; the image's ext4 is its lowest lower.
// Not the gRPC binding (service.ts) and not the daemon (runtime/).

import { mkdirSync } from 'node:fs';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DadiError } from '../errors.js';
import { findMount, findMountSync } from '../export/system.js';
import type { LaunchRequest } from '../runtime/protocol.js';
import { Label, remoteLayerOf, traceOf } from './labels.js';
import { MetadataStore, type RemoteLayer, type SnapshotKind, type SnapshotRecord } from './store.js';

/** Where DADI layer stacks are mounted: the dadi daemon, normally (devices.ts). */
export interface DeviceSet {
  /**
   * Mount the stack (bottom first) on `target` (an existing empty folder): read-only, or with
   * `writable` read-write through a writable block layer in those files (reopened if present).
   */
  mount(
    layers: RemoteLayer[],
    target: string,
    label: string,
    writable?: WritableFiles,
    trace?: StackTrace,
    /** Files to fetch on the device once it is mounted (what any start of the image reads first). */
    launch?: LaunchRequest,
  ): Promise<void>;
  umount(target: string): Promise<void>;
  /** Start opening these layers (bottom first) for a mount that will soon ask for them. */
  openAhead?(layers: RemoteLayer[]): Promise<void>;
  /** Fetch these launch files on the device mounted at `target`, in the background. */
  launch?(target: string, launch: LaunchRequest): Promise<void>;
}

/** The trace prefetch of a mounted stack: the image's acceleration layer, or a container's own trace file. */
export interface StackTrace {
  accelerationLayer?: RemoteLayer;
  /** Record the reads into this file (written when the device goes). */
  record?: string;
  /** Replay the trace in this file. */
  replay?: string;
}

export interface WritableFiles {
  data: string;
  index: string;
}

/** How a container's writes are kept over DADI layers: an overlayfs upper directory or a block layer. */
export type RwMode = 'overlayfs' | 'block';

export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: SnapshotKind;
  createdAt: Date;
  updatedAt: Date;
  labels: Record<string, string>;
}

export class SnapshotError extends DadiError {
  constructor(
    readonly status: 'ALREADY_EXISTS' | 'NOT_FOUND' | 'FAILED_PRECONDITION' | 'INVALID_ARGUMENT',
    message: string,
  ) {
    super(status === 'ALREADY_EXISTS' ? 'EEXIST' : status === 'NOT_FOUND' ? 'ENOTFOUND' : 'EINVAL', message);
  }
}

export class Snapshotter {
  private queue: Promise<unknown> = Promise.resolve();
  /** Stacks being mounted, by the top layer's id: a Prepare joins a mount started ahead of it. */
  private readonly mounting = new Map<string, Promise<string>>();
  /**
   * Launch files told for an image's top layer (by snapshot key) before its mount started: the
   * pull may have the config before containerd has even asked for the layer. The mount takes them.
   */
  private readonly launches = new Map<string, LaunchRequest>();
  /** Container snapshots (by id) whose command was asked of containerd: the times, or -1 once told. */
  private readonly commandAsked = new Map<string, number>();

  private constructor(
    readonly root: string,
    private readonly store: MetadataStore,
    private readonly devices: DeviceSet,
    private readonly rwMode: RwMode,
    private readonly log?: (m: string) => void,
    private readonly containerLaunch?: ContainerLaunch,
  ) {}

  /**
   * Open the state in `root` and re-attach the devices that active snapshots stand on. A device
   * that cannot be attached now (registry unreachable) is reported and tried again by `Mounts`.
   */
  static async open(
    root: string,
    devices: DeviceSet,
    opts: { log?: (m: string) => void; rwMode?: RwMode; containerLaunch?: ContainerLaunch } = {},
  ): Promise<Snapshotter> {
    await mkdir(join(root, 'snapshots'), { recursive: true });
    const s = new Snapshotter(
      root,
      await MetadataStore.open(root),
      devices,
      opts.rwMode ?? 'overlayfs',
      opts.log,
      opts.containerLaunch,
    );
    for (const rec of s.store.all()) {
      if (rec.kind === 'COMMITTED') continue;
      await s.mountsOf(rec).catch((e) => opts.log?.(`snapshot ${rec.key}: ${(e as Error).message}`));
    }
    return s;
  }

  prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.createThenMount('ACTIVE', key, parent, labels);
  }

  view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.createThenMount('VIEW', key, parent, labels);
  }

  async mounts(key: string): Promise<Mount[]> {
    const rec = await this.serial(async () => {
      const rec = this.need(key);
      if (rec.kind === 'COMMITTED') throw new SnapshotError('FAILED_PRECONDITION', `snapshot ${key} is committed`);
      return rec;
    });
    const mounts = await this.mountsOf(rec);
    this.commandAhead(rec);
    return mounts;
  }

  /**
   * Tell the image's device the command of the container this snapshot is for, once containerd
   * has its record (container-command.ts): `ctr run` and CRI ask for the mounts again to create
   * its task, and the shim and runc start the process a while after that. In the background;
   * asked a few times at most (the first ask may come before the container exists).
   */
  private commandAhead(rec: SnapshotRecord): void {
    const ask = this.containerLaunch;
    const asked = this.commandAsked.get(rec.id) ?? 0;
    if (!ask || !this.devices.launch || rec.kind !== 'ACTIVE' || rec.blockLayer || rec.trace) return;
    if (asked < 0 || asked >= MAX_COMMAND_ASKS) return;
    const top = this.dadiTop(rec.parent);
    if (!top) return;
    this.commandAsked.set(rec.id, asked + 1);
    void (async () => {
      const launch = await ask(rec.key);
      if (launch === null) return; // no container yet: the next Mounts asks again
      this.commandAsked.set(rec.id, -1);
      if (launch) await this.devices.launch?.(join(this.folder(top.id), 'mnt'), launch);
    })().catch((e) => this.log?.(`the command of ${rec.key}: ${(e as Error).message}`));
  }

  commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    return this.serial(async () => {
      const rec = this.need(key);
      if (rec.kind !== 'ACTIVE') throw new SnapshotError('FAILED_PRECONDITION', `snapshot ${key} is not active`);
      if (rec.blockLayer) {
        throw new SnapshotError(
          'FAILED_PRECONDITION',
          `snapshot ${key} keeps its writes in a block layer; commit it with dadi commit, or use the overlayfs mode`,
        );
      }
      if (this.store.get(name)) throw new SnapshotError('ALREADY_EXISTS', `snapshot ${name} already exists`);
      // A container's own trace device goes now (its recording is written): the layer keeps the files only.
      if (rec.trace) await this.unmountOwn(rec.id);
      const { trace: _, ...layer } = rec;
      this.store.delete(key);
      this.store.put({
        ...layer,
        key: name,
        kind: 'COMMITTED',
        labels: { ...rec.labels, ...labels },
        updatedAt: now(),
      });
      await this.store.save();
    });
  }

  remove(key: string): Promise<void> {
    return this.serial(async () => {
      const rec = this.need(key);
      if (this.store.children(key).length > 0) {
        throw new SnapshotError('FAILED_PRECONDITION', `snapshot ${key} has children`);
      }
      this.store.delete(key);
      this.launches.delete(key);
      this.commandAsked.delete(rec.id);
      await this.store.save();
      // The stack this snapshot used (or was) goes when nothing stands on it any more.
      const top = rec.remote ? rec : this.dadiTop(rec.parent);
      if (top && !this.deviceInUse(top)) await this.releaseDevice(top);
      await this.removeFolder(rec.id);
    });
  }

  stat(key: string): Promise<SnapshotInfo> {
    return this.serial(async () => infoOf(this.need(key)));
  }

  /** Replace the labels (the only mutable field): all of them, or the `labels.KEY` paths given. */
  update(name: string, labels: Record<string, string>, paths: string[]): Promise<SnapshotInfo> {
    return this.serial(async () => {
      const rec = this.need(name);
      let next: Record<string, string>;
      if (paths.length === 0 || paths.includes('labels')) next = { ...labels };
      else {
        next = { ...rec.labels };
        for (const p of paths) {
          if (!p.startsWith('labels.')) throw new SnapshotError('INVALID_ARGUMENT', `cannot update field ${p}`);
          const k = p.slice('labels.'.length);
          if (labels[k] === undefined) delete next[k];
          else next[k] = labels[k];
        }
      }
      const updated = { ...rec, labels: next, updatedAt: now() };
      this.store.put(updated);
      await this.store.save();
      return infoOf(updated);
    });
  }

  /** Bytes and inodes in the snapshot's own folder (a DADI layer's data is in the registry: 0). */
  usage(key: string): Promise<{ size: number; inodes: number }> {
    return this.serial(async () => {
      const rec = this.need(key);
      return diskUsage(join(this.folder(rec.id), 'fs'));
    });
  }

  walk(filters: string[]): Promise<SnapshotInfo[]> {
    return this.serial(async () =>
      this.store
        .all()
        .map(infoOf)
        .filter((i) => matchesFilters(i, filters)),
    );
  }

  /** Remove snapshot folders that no snapshot owns (left by a crash between save and removal). */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      const owned = new Set(this.store.all().map((s) => s.id));
      for (const id of await readdir(join(this.root, 'snapshots'))) if (!owned.has(id)) await this.removeFolder(id);
    });
  }

  /**
   * Record the snapshot in the queue, then wait for its device outside it: an image's mount takes
   * a lazy fetch's round trips, and calls for other snapshots must not queue behind it. A failed
   * mount removes the snapshot again (in the queue), so containerd sees no half-made one.
   */
  private async createThenMount(
    kind: 'ACTIVE' | 'VIEW',
    key: string,
    parent: string,
    labels: Record<string, string>,
  ): Promise<Mount[]> {
    const rec = await this.serial(() => this.create(kind, key, parent, labels));
    try {
      return await this.mountsOf(rec);
    } catch (e) {
      await this.serial(async () => {
        if (this.store.get(key)?.id !== rec.id) return; // removed meanwhile
        this.store.delete(key);
        await this.store.save().catch(() => {});
        await this.removeFolder(rec.id).catch(() => {});
      });
      throw e;
    }
  }

  private async create(
    kind: 'ACTIVE' | 'VIEW',
    key: string,
    parent: string,
    labels: Record<string, string>,
  ): Promise<SnapshotRecord> {
    if (!key) throw new SnapshotError('INVALID_ARGUMENT', 'snapshot key is empty');
    if (this.store.get(key)) throw new SnapshotError('ALREADY_EXISTS', `snapshot ${key} already exists`);
    const parentRec = parent ? this.need(parent) : undefined;
    if (parentRec && parentRec.kind !== 'COMMITTED') {
      throw new SnapshotError('FAILED_PRECONDITION', `parent ${parent} is not committed`);
    }
    const target = labels[Label.targetRef];
    const remote = kind === 'ACTIVE' && target ? remoteLayerOver(parentRec, labels) : undefined;
    if (remote) {
      if (this.store.get(target!)) throw new SnapshotError('ALREADY_EXISTS', `snapshot ${target} already exists`);
      await this.commitRemote([this.remoteRecord(target!, parentRec, labels, remote)]);
      throw new SnapshotError('ALREADY_EXISTS', `snapshot ${target} already exists (DADI layer ${remote.digest})`);
    }
    const id = this.store.newId();
    // Synchronous, as the store's save: on a container's start path, each thread-pool round trip
    // waits behind the process's other work, and these take microseconds.
    mkdirSync(join(this.folder(id), 'fs'), { recursive: true });
    mkdirSync(join(this.folder(id), 'work'), { recursive: true });
    const t = now();
    const mode =
      labels[Label.writable] === 'dir' ? 'block' : labels[Label.writable] === 'overlayfs' ? 'overlayfs' : this.rwMode;
    const overDadi = kind === 'ACTIVE' && parentRec?.remote !== undefined;
    const blockLayer = overDadi && mode === 'block' ? true : undefined;
    const rec: SnapshotRecord = {
      id,
      key,
      parent: parent || undefined,
      kind,
      createdAt: t,
      updatedAt: t,
      labels,
      blockLayer,
    };
    try {
      if (overDadi) {
        const trace = await traceOf(labels);
        if (trace) rec.trace = trace;
      }
    } catch (e) {
      await this.removeFolder(id).catch(() => {});
      throw e;
    }
    this.store.put(rec);
    try {
      await this.store.save();
    } catch (e) {
      this.store.delete(key);
      await this.store.save().catch(() => {});
      await this.removeFolder(id).catch(() => {});
      throw e;
    }
    return rec;
  }

  /**
   * Record an image's DADI layers (bottom first) as committed snapshots before containerd asks for
   * them: `dadi pull`, run in this process, knows them once it has the manifest. One save for all
   * of them, and the top layer's mount (mount-ahead label) starts now, not at its Prepare;
   * containerd's Prepare of each layer then finds it and is answered ALREADY_EXISTS at once, as for
   * a layer an earlier pull left. Layers already recorded are skipped; the first layer that is not
   * a DADI layer over DADI layers ends the list (its Prepare decides what it is). Records that
   * containerd never learns of (a pull that failed after this) are removed by its garbage
   * collection, which walks the snapshotter's snapshots.
   */
  recordRemoteLayers(
    layers: { chainId: string; parent: string; labels: Record<string, string> }[],
    /** Files the mount ahead fetches as soon as the image's inode tables are in (before it is done). */
    launch?: LaunchRequest,
  ): Promise<void> {
    return this.serial(async () => {
      const added: SnapshotRecord[] = [];
      for (const l of layers) {
        if (this.store.get(l.chainId)) continue;
        const parentRec = l.parent ? (this.store.get(l.parent) ?? added.find((r) => r.key === l.parent)) : undefined;
        if (l.parent && parentRec?.kind !== 'COMMITTED') break;
        const remote = remoteLayerOver(parentRec, l.labels);
        if (!remote) break;
        added.push(this.remoteRecord(l.chainId, parentRec, l.labels, remote));
      }
      // A Prepare of one of them, queued behind this, finds it saved.
      if (added.length > 0) await this.commitRemote(added, launch);
    });
  }

  /** The committed record of a DADI layer (remoteLayerOver), without its data. */
  private remoteRecord(
    target: string,
    parentRec: SnapshotRecord | undefined,
    labels: Record<string, string>,
    remote: RemoteLayer,
  ): SnapshotRecord {
    const t = now();
    return {
      id: this.store.newId(),
      key: target,
      parent: parentRec?.key,
      kind: 'COMMITTED',
      createdAt: t,
      updatedAt: t,
      labels: { ...labels, [Label.remote]: 'remote snapshot' },
      remote,
    };
  }

  /** Put remote layer records (bottom first) in the store and save it, starting a mount ahead where labelled. */
  private async commitRemote(records: SnapshotRecord[], launch?: LaunchRequest): Promise<void> {
    for (const r of records) this.store.put(r);
    // The mount ahead starts before the state is on disk (an fsync): it is a start's critical path.
    // Its folder is new, so nothing can be mounted there yet.
    for (const r of records) {
      if (r.labels[Label.mountAhead] !== 'yes') continue;
      this.ensureDevice(r, { fresh: true, launch }).catch((e) =>
        this.log?.(`mounting ${r.key} ahead of its containers: ${(e as Error).message} (tried again at Prepare)`),
      );
    }
    try {
      await this.store.save();
    } catch (e) {
      // Nothing of the layers stays: not the records, not their devices.
      for (const r of records) this.store.delete(r.key);
      for (const r of records) await this.removeFolder(r.id).catch(() => {});
      throw e;
    }
  }

  /** The mounts for an active or view snapshot: its lowers (top first), then its own folder. */
  private async mountsOf(rec: SnapshotRecord): Promise<Mount[]> {
    if (rec.blockLayer) return [{ type: 'bind', source: await this.ensureBlockLayer(rec), options: ['rw', 'rbind'] }];
    const lowers: string[] = [];
    let top: SnapshotRecord | undefined;
    for (let p = rec.parent ? this.need(rec.parent) : undefined; p; p = p.parent ? this.need(p.parent) : undefined) {
      if (p.remote) {
        top = p;
        break;
      }
      lowers.push(join(this.folder(p.id), 'fs'));
    }
    // A container with its own trace gets its own device: its reads are its own to record.
    if (top) lowers.push(rec.trace ? await this.ensureOwnDevice(rec) : await this.ensureDevice(top));
    const fs = join(this.folder(rec.id), 'fs');
    if (rec.kind === 'ACTIVE') {
      if (lowers.length === 0) return [{ type: 'bind', source: fs, options: ['rw', 'rbind'] }];
      const work = join(this.folder(rec.id), 'work');
      return [
        {
          type: 'overlay',
          source: 'overlay',
          options: [`workdir=${work}`, `upperdir=${fs}`, `lowerdir=${lowers.join(':')}`, 'index=off'],
        },
      ];
    }
    if (lowers.length === 0) return [{ type: 'bind', source: fs, options: ['ro', 'rbind'] }];
    if (lowers.length === 1) return [{ type: 'bind', source: lowers[0]!, options: ['ro', 'rbind'] }];
    return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] }];
  }

  /** The topmost DADI layer at or below `key` when the chain has one. */
  private dadiTop(key: string | undefined): SnapshotRecord | undefined {
    for (let p = key ? this.store.get(key) : undefined; p; p = p.parent ? this.store.get(p.parent) : undefined) {
      if (p.remote) return p;
    }
    return undefined;
  }

  /**
   * Mount the stack ending at `top` unless it is mounted (or being mounted); returns the mount
   * point. `fresh`: its folder was just made, so nothing is mounted there (no look at the mounts).
   */
  private ensureDevice(
    top: SnapshotRecord,
    { fresh = false, launch: early }: { fresh?: boolean; launch?: LaunchRequest } = {},
  ): Promise<string> {
    return this.mountOnce(top.id, async () => {
      const target = join(this.folder(top.id), 'mnt');
      if (!fresh && findMountSync(target)) return target;
      const { layers, accel } = this.remoteStack(top);
      await mkdir(target, { recursive: true });
      const trace = accel ? { accelerationLayer: accel } : undefined;
      // The image's own launch files when told already, else the ones the mount ahead was given.
      const launch = this.launches.get(top.key) ?? early;
      this.launches.delete(top.key);
      // A failure names the image: it reaches containerd (and `ctr run`) as the Prepare's error.
      await this.devices
        .mount(layers, target, `snapshot ${top.key} (${describe(layers)})`, undefined, trace, launch)
        .catch((e: Error) => {
          throw new DadiError(
            e instanceof DadiError ? e.code : 'EIO',
            `mounting ${describe(layers)} (snapshot ${top.key}): ${e.message}`,
            { cause: e },
          );
        });
      return target;
    });
  }

  /**
   * Fetch `launch` on the device of the DADI layer snapshot `key` (an image's top layer; the pull
   * names the files once it has the image's config): once its mount in flight is done, or at once
   * when it is mounted. Otherwise (no such snapshot yet, or not mounted) the files wait for the
   * mount of that snapshot, which fetches them once it is mounted.
   */
  async launchAhead(key: string, launch: LaunchRequest): Promise<void> {
    const rec = this.store.get(key);
    if (rec && !rec.remote) return;
    const inFlight = rec && this.mounting.get(rec.id);
    const target = rec && join(this.folder(rec.id), 'mnt');
    if (inFlight) await inFlight;
    else if (!target || !(await findMount(target))) {
      this.launches.delete(key);
      this.launches.set(key, launch);
      // Bounded: told for images whose mount never came, the oldest go first.
      if (this.launches.size > MAX_PENDING_LAUNCHES) this.launches.delete(this.launches.keys().next().value!);
      return;
    }
    await this.devices.launch?.(target!, launch);
  }

  /** Run `mount` for a snapshot's folder unless one is in flight there, which the caller then joins. */
  private mountOnce(id: string, mount: () => Promise<string>): Promise<string> {
    const inFlight = this.mounting.get(id);
    if (inFlight) return inFlight;
    const mounted = mount().finally(() => this.mounting.delete(id));
    this.mounting.set(id, mounted);
    return mounted;
  }

  /** Mount a block-layer snapshot's own read-write device unless it is mounted; returns the mount point. */
  private async ensureBlockLayer(rec: SnapshotRecord): Promise<string> {
    const block = join(this.folder(rec.id), 'block');
    await mkdir(block, { recursive: true });
    const writable = { data: join(block, 'writable_data'), index: join(block, 'writable_index') };
    return this.ensureOwnDevice(rec, writable);
  }

  /**
   * Mount a container snapshot's own device (read-write over its writable block layer, or
   * read-only for its own trace) unless it is mounted; returns the mount point.
   */
  private ensureOwnDevice(rec: SnapshotRecord, writable?: WritableFiles): Promise<string> {
    return this.mountOnce(rec.id, () => this.mountOwnDevice(rec, writable));
  }

  private async mountOwnDevice(rec: SnapshotRecord, writable?: WritableFiles): Promise<string> {
    const target = join(this.folder(rec.id), 'mnt');
    if (await findMount(target)) return target;
    const { layers, accel } = this.remoteStack(this.need(rec.parent!));
    await mkdir(target, { recursive: true });
    const trace: StackTrace | undefined = rec.trace
      ? { [rec.trace.mode]: rec.trace.path }
      : accel
        ? { accelerationLayer: accel }
        : undefined;
    const what = `${writable ? 'rw' : rec.trace?.mode === 'record' ? 'recording a trace' : 'replaying a trace'} over`;
    await this.devices.mount(layers, target, `snapshot ${rec.key} (${what} ${describe(layers)})`, writable, trace);
    return target;
  }

  /**
   * The DADI layers from the bottom up to `top` (all of them must be DADI layers), and the image's
   * acceleration layer when `top` is one (never stacked).
   */
  private remoteStack(top: SnapshotRecord): { layers: RemoteLayer[]; accel?: RemoteLayer } {
    const layers: RemoteLayer[] = [];
    for (let p: SnapshotRecord | undefined = top; p; p = p.parent ? this.store.get(p.parent) : undefined) {
      if (!p.remote)
        throw new SnapshotError('FAILED_PRECONDITION', `snapshot ${p.key}: ordinary layer under a DADI layer`);
      if (!p.remote.acceleration) layers.unshift(p.remote);
    }
    return top.remote?.acceleration ? { layers, accel: top.remote } : { layers };
  }

  private deviceInUse(top: SnapshotRecord): boolean {
    return this.store
      .all()
      .some((s) => s.kind !== 'COMMITTED' && !s.blockLayer && !s.trace && this.dadiTop(s.parent) === top);
  }

  private releaseDevice(top: SnapshotRecord): Promise<void> {
    return this.unmountOwn(top.id);
  }

  private async removeFolder(id: string): Promise<void> {
    // Never delete through a mount: a stack still mounted here is unmounted first.
    await this.unmountOwn(id);
    await rm(this.folder(id), { recursive: true, force: true });
  }

  /** Unmount the device mounted in a snapshot's folder, if any (waiting for one being mounted). */
  private async unmountOwn(id: string): Promise<void> {
    await this.mounting.get(id)?.catch(() => {});
    const mnt = join(this.folder(id), 'mnt');
    if (await findMount(mnt)) await this.devices.umount(mnt);
  }

  private folder(id: string): string {
    return join(this.root, 'snapshots', id);
  }

  private need(key: string): SnapshotRecord {
    const rec = this.store.get(key);
    if (!rec) throw new SnapshotError('NOT_FOUND', `snapshot ${key} does not exist`);
    return rec;
  }

  /** One operation at a time: each reads and writes the whole state. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }
}

/**
 * The DADI layer `labels` describe when it can be committed here without its data: over DADI
 * layers (or none); an acceleration layer only over DADI layers (its trace is of theirs).
 * Undefined for anything else (unpacked like an ordinary layer).
 */
function remoteLayerOver(
  parentRec: SnapshotRecord | undefined,
  labels: Record<string, string>,
): RemoteLayer | undefined {
  const remote = remoteLayerOf(labels);
  return remote && (parentRec ? parentRec.remote : !remote.acceleration) ? remote : undefined;
}

/**
 * The launch request of the container whose rootfs is the snapshot `key` (container-command.ts):
 * null while containerd has no such container, undefined when there is nothing to fetch.
 */
export type ContainerLaunch = (key: string) => Promise<LaunchRequest | null | undefined>;

/** Times a container snapshot's command is asked of containerd at most (one per Mounts call). */
const MAX_COMMAND_ASKS = 3;

/** Images whose launch files wait for a mount (a pull names them; a host pulls a few at once). */
const MAX_PENDING_LAUNCHES = 32;

function describe(layers: RemoteLayer[]): string {
  const last = layers[layers.length - 1]!;
  return `${last.registry}/${last.repository}, ${layers.length} layers`;
}

function now(): string {
  return new Date().toISOString();
}

function infoOf(r: SnapshotRecord): SnapshotInfo {
  return {
    name: r.key,
    parent: r.parent ?? '',
    kind: r.kind,
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
    labels: r.labels,
  };
}

/**
 * containerd's filter syntax, the subset its callers send to snapshotters: comma-separated
 * conjunctions of `field==value` / `field!=value` over name, parent, kind and `labels."KEY"`,
 * alternatives joined by `|`. An unknown field matches nothing.
 */
export function matchesFilters(info: SnapshotInfo, filters: string[]): boolean {
  if (filters.length === 0) return true;
  return filters.some((f) => f.split('|').some((alt) => alt.split(',').every((c) => matchesClause(info, c.trim()))));
}

function matchesClause(info: SnapshotInfo, clause: string): boolean {
  if (clause === '') return true;
  const m = /^([^!=]+?)\s*(==|!=)\s*(.*)$/.exec(clause);
  const field = (m ? m[1]! : clause).trim();
  let actual: string | undefined;
  const label = /^labels\.(?:"((?:[^"\\]|\\.)*)"|(.+))$/.exec(field);
  if (label) actual = info.labels[label[1] ?? label[2]!];
  else if (field === 'name') actual = info.name;
  else if (field === 'parent') actual = info.parent;
  else if (field === 'kind') actual = info.kind.toLowerCase();
  else return false;
  if (!m) return actual !== undefined;
  const want = unquote(m[3]!.trim());
  return m[2] === '==' ? actual === want : actual !== want;
}

function unquote(s: string): string {
  return s.startsWith('"') && s.endsWith('"') && s.length >= 2 ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s;
}

/** Bytes (rounded to 4 KiB blocks, as du counts them) and inodes under `dir`; bounded by the tree itself. */
async function diskUsage(dir: string): Promise<{ size: number; inodes: number }> {
  let size = 0;
  let inodes = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const st = await lstat(d).catch(() => undefined);
    if (!st) continue;
    inodes++;
    size += st.blocks * 512;
    if (st.isDirectory()) for (const e of await readdir(d).catch(() => [])) stack.push(join(d, e));
  }
  return { size, inodes };
}
