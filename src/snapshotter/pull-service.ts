// The snapshotter performs `dadi pull --containerd-address` itself: the CLI sends a PullRequest
// (pull-wire.ts) over the snapshotter's socket and this runs pull.ts in the warm process, whose
// registry clients (HTTP pools, tokens), containerd gRPC channels and loaded API definitions
// outlive each pull. Credentials are the snapshotter's to resolve, as the stargz snapshotter
// does: docker's config.json of its own environment and containerd's hosts folder of its own
// configuration (or the folder the request names). The CLI's hint as it starts (PullAhead) gives its
// pull a head start: the image's resolve and config fetch, which the pull then takes (head-starts.ts).

import type { ServiceDefinition } from '@grpc/grpc-js';
import { DadiError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { RegistryClient } from '../registry/client.js';
import { hostsDirLookup } from '../registry/hosts.js';
import type { LaunchRequest } from '../runtime/protocol.js';
import { containerLaunch } from './container-command.js';
import { ContainerdClient } from './containerd-client.js';
import { HeadStarts } from './head-starts.js';
import { type PullHeadStart, pullHeadStart, pullIntoContainerd, type RemoteLayerSnapshot } from './pull.js';
import { MAX_PULL_MESSAGE_BYTES, PULL_METHOD_PATH, type PullReply, type PullRequest } from './pull-wire.js';
import type { DeviceSet } from './snapshotter.js';
import type { RemoteLayer } from './store.js';

/** Clients kept per distinct setting (containerd socket; registry hosts folder, plain HTTP, platform). */
const MAX_KEPT = 16;

export interface PullServiceOptions {
  /** containerd's registry hosts folder when a request names none ('' for none). */
  hostsDir: string;
  /** The snapshotter's devices: told to open an image's layers once its manifest is in. */
  devices?: DeviceSet;
  /** The snapshotter's recordRemoteLayers: told the image's layer snapshots before containerd asks for them. */
  recordLayers?: (layers: RemoteLayerSnapshot[], launch?: LaunchRequest) => Promise<void>;
  /** The snapshotter's launchAhead: told the image's top layer and its launch files once the config is in. */
  launchAhead?: (topChainId: string, launch: LaunchRequest) => Promise<void>;
  log?: (m: string) => void;
}

export class PullService {
  private readonly registries = new KeptClients<RegistryClient>((c) => c.close());
  private readonly containerds = new KeptClients<ContainerdClient>((c) => c.close());
  /** The containerd the last pull was for: the one that asks this snapshotter for its containers' mounts. */
  private containerdAddress?: string;
  /** The head starts the CLI's hints gave, by the request's registry settings and reference. */
  private readonly headStarts = new HeadStarts<PullHeadStart>();

  constructor(private readonly o: PullServiceOptions) {}

  /**
   * The launch request of the container whose rootfs is the snapshot `key`, asked of the
   * containerd the last pull was for (container-command.ts); undefined before any pull.
   */
  async containerLaunch(key: string): Promise<LaunchRequest | null | undefined> {
    const address = this.containerdAddress;
    if (!address) return undefined;
    const c = this.containerds.acquire(address, () => new ContainerdClient(address, 'default'));
    try {
      return await containerLaunch(c.client, key);
    } finally {
      c.release();
    }
  }

  /**
   * The CLI's hint (PullAhead): resolve `req`'s image and fetch its config now, and have the daemon
   * open its layers, for its pull request to take. Throws EINVAL for a request the pull would
   * refuse; what fails is the pull's to do again.
   */
  headStart(req: PullRequest): void {
    checkRequest(req);
    // The pull's first containerd call (its lease) then finds the connection up.
    const containerd = this.containerdFor(req);
    containerd.client.connect();
    containerd.release();
    this.headStarts.start(headStartKey(req), () => {
      const registry = this.registryFor(req);
      const h = pullHeadStart(req.ref, registry.client, (layers) => this.openAhead(req.ref, layers));
      void Promise.allSettled([h.image, h.config]).then(() => registry.release());
      return h;
    });
  }

  async pull(req: PullRequest): Promise<PullReply> {
    checkRequest(req);
    const steps: PullReply['steps'] = [];
    const registry = this.registryFor(req);
    const containerd = this.containerdFor(req);
    this.containerdAddress = req.containerdAddress;
    try {
      const r = await pullIntoContainerd(req.ref, registry.client, {
        headStart: this.headStarts.take(headStartKey(req)),
        address: req.containerdAddress,
        namespace: req.namespace,
        snapshotter: req.snapshotter,
        connection: containerd.client,
        onStep: (step, ms) => steps.push({ step, ms }),
        // The daemon opens the layers while containerd is asked for the snapshots that mount them.
        onLayersKnown: (layers) => this.openAhead(req.ref, layers),
        // Recorded here first (one save for all, the mount starts); containerd's Prepares find them.
        recordLayers: async (layers, launch) =>
          this.o
            .recordLayers?.(layers, launch)
            .catch((e) => this.o.log?.(`recording ${req.ref}'s layers ahead: ${(e as Error).message}`)),
        onLaunchKnown: (top, launch) =>
          void this.o
            .launchAhead?.(top, launch)
            .catch((e) => this.o.log?.(`fetching ${req.ref}'s launch files ahead: ${(e as Error).message}`)),
      });
      return { ...r, steps };
    } finally {
      registry.release();
      containerd.release();
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.containerds.closeAll(), this.registries.closeAll()]);
  }

  /** Have the daemon open `ref`'s DADI layers, in the background. */
  private openAhead(ref: string, layers: RemoteLayer[]): void {
    void this.o.devices
      ?.openAhead?.(layers)
      .catch((e) => this.o.log?.(`opening ${ref}'s layers ahead: ${(e as Error).message}`));
  }

  /** The kept containerd client for `req`'s socket (release it when done). */
  private containerdFor(req: PullRequest): { client: ContainerdClient; release(): void } {
    return this.containerds.acquire(
      req.containerdAddress,
      () => new ContainerdClient(req.containerdAddress, 'default'),
    );
  }

  /** The kept registry client for `req`'s settings (release it when done). */
  private registryFor(req: PullRequest): { client: RegistryClient; release(): void } {
    const hostsDir = req.hostsDir ?? this.o.hostsDir;
    return this.registries.acquire(JSON.stringify([hostsDir, !!req.insecure, req.platform ?? '']), () => {
      return new RegistryClient({
        insecure: req.insecure ? true : undefined,
        platform: req.platform ? parsePlatform(req.platform) : undefined,
        hosts: hostsDir ? hostsDirLookup(hostsDir) : undefined,
      });
    });
  }
}

/** What a head start depends on in a request: its reference and registry settings. */
function headStartKey(req: PullRequest): string {
  return JSON.stringify([req.ref, req.hostsDir ?? null, !!req.insecure, req.platform ?? '']);
}

/**
 * Clients kept per distinct setting, at most MAX_KEPT: beyond that the oldest is forgotten, and
 * closed once the last pull using it has released it, never under a pull still running.
 */
export class KeptClients<T> {
  private readonly entries = new Map<string, { client: T; users: number; evicted: boolean }>();

  constructor(private readonly close: (client: T) => Promise<void> | void) {}

  acquire(key: string, make: () => T): { client: T; release(): void } {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { client: make(), users: 0, evicted: false };
      this.entries.set(key, entry);
      if (this.entries.size > MAX_KEPT) {
        const [oldestKey, oldest] = this.entries.entries().next().value as [string, typeof entry];
        this.entries.delete(oldestKey);
        oldest.evicted = true;
        if (oldest.users === 0) this.closeQuietly(oldest.client);
      }
    }
    const held = entry;
    held.users++;
    let released = false;
    return {
      client: held.client,
      release: () => {
        if (released) return;
        released = true;
        if (--held.users === 0 && held.evicted) this.closeQuietly(held.client);
      },
    };
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => this.close(e.client)));
  }

  /** An evicted client's close: nobody waits for it, so a failure is dropped. */
  private closeQuietly(client: T): void {
    void Promise.resolve()
      .then(() => this.close(client))
      .catch(() => {});
  }
}

function checkRequest(req: PullRequest): void {
  const str = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length < 4096;
  if (!req || !str(req.ref) || !str(req.containerdAddress) || !str(req.namespace) || !str(req.snapshotter)) {
    throw new DadiError('EINVAL', 'pull request: ref, containerdAddress, namespace and snapshotter are needed');
  }
  if (req.hostsDir !== undefined && typeof req.hostsDir !== 'string') {
    throw new DadiError('EINVAL', 'pull request: hostsDir is not a string');
  }
  if (req.platform !== undefined && !str(req.platform)) throw new DadiError('EINVAL', 'pull request: bad platform');
}

/** The service's wire definition for grpc-js: JSON in, JSON out, bounded. */
export const pullServiceDefinition: ServiceDefinition = {
  Pull: {
    path: PULL_METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: toJson,
    requestDeserialize: fromJson,
    responseSerialize: toJson,
    responseDeserialize: fromJson,
  },
};

function toJson(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

function fromJson(b: Buffer): unknown {
  if (b.length > MAX_PULL_MESSAGE_BYTES) throw new DadiError('ERANGE', `pull message of ${b.length} bytes`);
  return JSON.parse(b.toString());
}
