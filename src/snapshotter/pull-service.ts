// The snapshotter performs `dadi pull --containerd-address` itself: the CLI sends a PullRequest
// (pull-wire.ts) over the snapshotter's socket and this runs pull.ts in the warm process, whose
// registry clients (HTTP pools, tokens), containerd gRPC channels and loaded API definitions
// outlive each pull. Credentials are the snapshotter's to resolve, as the stargz snapshotter
// does: docker's config.json of its own environment and containerd's hosts folder of its own
// configuration (or the folder the request names).

import type { ServiceDefinition } from '@grpc/grpc-js';
import { DadiError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { RegistryClient } from '../registry/client.js';
import { hostsDirLookup } from '../registry/hosts.js';
import { ContainerdClient } from './containerd-client.js';
import { pullIntoContainerd } from './pull.js';
import { MAX_PULL_MESSAGE_BYTES, PULL_METHOD_PATH, type PullReply, type PullRequest } from './pull-wire.js';
import type { DeviceSet } from './snapshotter.js';

/** Clients kept per distinct setting (containerd socket; registry hosts folder, plain HTTP, platform). */
const MAX_KEPT = 16;

export interface PullServiceOptions {
  /** containerd's registry hosts folder when a request names none ('' for none). */
  hostsDir: string;
  /** The snapshotter's devices: told to open an image's layers once its manifest is in. */
  devices?: DeviceSet;
  log?: (m: string) => void;
}

export class PullService {
  private readonly registries = new Map<string, RegistryClient>();
  private readonly containerds = new Map<string, ContainerdClient>();

  constructor(private readonly o: PullServiceOptions) {}

  async pull(req: PullRequest): Promise<PullReply> {
    checkRequest(req);
    const steps: PullReply['steps'] = [];
    const r = await pullIntoContainerd(req.ref, this.registryFor(req), {
      address: req.containerdAddress,
      namespace: req.namespace,
      snapshotter: req.snapshotter,
      connection: this.containerdFor(req.containerdAddress),
      onStep: (step, ms) => steps.push({ step, ms }),
      // The daemon opens the layers while containerd is asked for the snapshots that mount them.
      onLayersKnown: (layers) =>
        void this.o.devices
          ?.openAhead?.(layers)
          .catch((e) => this.o.log?.(`opening ${req.ref}'s layers ahead: ${(e as Error).message}`)),
    });
    return { ...r, steps };
  }

  async close(): Promise<void> {
    for (const c of this.containerds.values()) c.close();
    this.containerds.clear();
    await Promise.all([...this.registries.values()].map((c) => c.close()));
    this.registries.clear();
  }

  private registryFor(req: PullRequest): RegistryClient {
    const hostsDir = req.hostsDir ?? this.o.hostsDir;
    const key = JSON.stringify([hostsDir, !!req.insecure, req.platform ?? '']);
    return kept(
      this.registries,
      key,
      (old) => void old.close().catch(() => {}),
      () => {
        return new RegistryClient({
          insecure: req.insecure ? true : undefined,
          platform: req.platform ? parsePlatform(req.platform) : undefined,
          hosts: hostsDir ? hostsDirLookup(hostsDir) : undefined,
        });
      },
    );
  }

  private containerdFor(address: string): ContainerdClient {
    return kept(
      this.containerds,
      address,
      (old) => old.close(),
      () => new ContainerdClient(address, 'default'),
    );
  }
}

/** The value for `key`, made and remembered when missing; the oldest goes (closed) beyond MAX_KEPT. */
function kept<T>(map: Map<string, T>, key: string, close: (old: T) => void, make: () => T): T {
  const hit = map.get(key);
  if (hit) return hit;
  const made = make();
  map.set(key, made);
  if (map.size > MAX_KEPT) {
    const [oldest, old] = map.entries().next().value as [string, T];
    map.delete(oldest);
    close(old);
  }
  return made;
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
