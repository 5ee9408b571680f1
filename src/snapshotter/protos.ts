// containerd's gRPC API (snapshots, content, images, leases) loaded at run time from the .proto
// files that Debian's golang-github-containerd-containerd-dev installs: the wire definitions are
// containerd's, never copied here. Not a client or a server: see service.ts and containerd-client.ts.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { DadiError } from '../errors.js';

/** Where the Debian package puts Go sources (and with them containerd's .proto files). */
export const GOCODE = process.env.DADI_CONTAINERD_PROTOS ?? '/usr/share/gocode/src';
const API = 'github.com/containerd/containerd/api/services';
const FILES = {
  snapshots: `${API}/snapshots/v1/snapshots.proto`,
  content: `${API}/content/v1/content.proto`,
  images: `${API}/images/v1/images.proto`,
  leases: `${API}/leases/v1/leases.proto`,
  containers: `${API}/containers/v1/containers.proto`,
};

export interface ContainerdApi {
  Snapshots: ServiceClientConstructor;
  Content: ServiceClientConstructor;
  Images: ServiceClientConstructor;
  Leases: ServiceClientConstructor;
  Containers: ServiceClientConstructor;
}

let loaded: ContainerdApi | undefined;

/** Load (once) the containerd services; a clear error names the package when the files are missing. */
export function containerdApi(): ContainerdApi {
  if (loaded) return loaded;
  const missing = Object.values(FILES).filter((f) => !existsSync(join(GOCODE, f)));
  if (missing.length > 0) {
    throw new DadiError(
      'ENOTFOUND',
      `${join(GOCODE, missing[0]!)}: containerd's API definitions are missing (apt-get install golang-github-containerd-containerd-dev)`,
    );
  }
  const def = loadSync(Object.values(FILES), {
    // gogoproto/gogo.proto comes with the gogo package, google/protobuf/* with protobufjs itself.
    includeDirs: [GOCODE, join(GOCODE, 'github.com/gogo/protobuf')],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const services = (loadPackageDefinition(def).containerd as GrpcObject).services as GrpcObject;
  const svc = (name: string, cls: string) =>
    ((services[name] as GrpcObject).v1 as GrpcObject)[cls] as ServiceClientConstructor;
  loaded = {
    Snapshots: svc('snapshots', 'Snapshots'),
    Content: svc('content', 'Content'),
    Images: svc('images', 'Images'),
    Leases: svc('leases', 'Leases'),
    Containers: svc('containers', 'Containers'),
  };
  return loaded;
}

/**
 * Generate the message codecs of every method of the containerd services now (protobufjs builds
 * each type's encoder and decoder on first use, ~45 ms for all on this VM): a process that serves
 * or calls containerd does it at start, not inside its first pull and a container's first Prepare.
 * A nested message type builds on its first use too, so the ones a container's start carries go
 * through once here: the mounts of Prepare and Mounts, the info of Stat, and the container record
 * (runtime, spec, timestamps) the snapshotter reads at the container's task creation, ~10 ms of
 * the snapshotter's CPU while the shim and runc start.
 */
export function warmContainerdCodecs(): void {
  const api = containerdApi();
  const empty = Buffer.alloc(0);
  for (const cls of [api.Snapshots, api.Content, api.Images, api.Leases, api.Containers]) {
    for (const m of Object.values(cls.service)) {
      m.requestSerialize({});
      m.requestDeserialize(empty);
      m.responseSerialize({});
      m.responseDeserialize(empty);
    }
  }
  const time = { seconds: '1', nanos: 1 };
  const nested: [ServiceClientConstructor, string, unknown][] = [
    [api.Snapshots, 'Prepare', { mounts: [{ type: 'bind', source: '/', options: ['ro'] }] }],
    [api.Snapshots, 'Mounts', { mounts: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/'] }] }],
    [
      api.Snapshots,
      'Stat',
      { info: { name: 'n', parent: 'p', kind: 'COMMITTED', created_at: time, updated_at: time, labels: { k: 'v' } } },
    ],
    [
      api.Containers,
      'Get',
      {
        container: {
          id: 'c',
          labels: { k: 'v' },
          image: 'i',
          runtime: { name: 'r', options: { type_url: 't', value: Buffer.from('{}') } },
          spec: { type_url: 't', value: Buffer.from('{}') },
          snapshotter: 's',
          snapshot_key: 'k',
          created_at: time,
          updated_at: time,
          extensions: { k: { type_url: 't', value: Buffer.from('{}') } },
        },
      },
    ],
  ];
  for (const [cls, method, reply] of nested) {
    const m = cls.service[method]!;
    m.responseDeserialize(m.responseSerialize(reply));
  }
}
