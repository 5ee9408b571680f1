// A small client of containerd's own gRPC API (content, images, leases, snapshots, containers) on its unix
// socket, in one namespace: each call as a promise, errors as DadiErrors that keep containerd's
// gRPC code. Not a general containerd client: only what `dadi pull` and the snapshotter need.

import { type Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { DadiError } from '../errors.js';
import { containerdApi } from './protos.js';

export class ContainerdError extends DadiError {
  constructor(
    readonly grpcCode: status,
    message: string,
  ) {
    super(grpcCode === status.NOT_FOUND ? 'ENOTFOUND' : grpcCode === status.ALREADY_EXISTS ? 'EEXIST' : 'EIO', message);
  }
}

type Unary = (req: unknown, md: Metadata, cb: (e: ServiceError | null, r: unknown) => void) => void;
type Clients = Record<'snapshots' | 'content' | 'images' | 'leases' | 'containers', Client>;

export class ContainerdClient {
  private readonly clients: Clients;
  /** Whether `close` closes the channels (not for a view made by `inNamespace`). */
  private readonly owner: boolean;
  private lease: string | undefined;

  constructor(
    readonly address: string,
    readonly namespace: string,
    shared?: Clients,
  ) {
    this.owner = !shared;
    if (shared) {
      this.clients = shared;
      return;
    }
    const api = containerdApi();
    const target = `unix:${address}`;
    const creds = credentials.createInsecure();
    this.clients = {
      snapshots: new api.Snapshots(target, creds),
      content: new api.Content(target, creds),
      images: new api.Images(target, creds),
      leases: new api.Leases(target, creds),
      containers: new api.Containers(target, creds),
    };
  }

  /**
   * Start connecting every channel to containerd now, without a call (a pull about to come: the
   * CLI's hint), so that the first call does not wait for the connection; never throws.
   */
  connect(): void {
    for (const c of Object.values(this.clients)) {
      try {
        c.getChannel().getConnectivityState(true);
      } catch {
        // A closed channel: the call reports it.
      }
    }
  }

  /** A client for `namespace` (with its own lease) over this one's channels; closing it leaves them open. */
  inNamespace(namespace: string): ContainerdClient {
    return new ContainerdClient(this.address, namespace, this.clients);
  }

  /** Calls after this carry a lease, so that containerd's GC keeps what they create until `endLease`. */
  async beginLease(id: string): Promise<void> {
    const expire = new Date(Date.now() + 3600_000).toISOString();
    await this.call('leases', 'Create', { id, labels: { 'containerd.io/gc.expire': expire } });
    this.lease = id;
  }

  async endLease(): Promise<void> {
    const id = this.lease;
    this.lease = undefined;
    if (id) await this.call('leases', 'Delete', { id, sync: false });
  }

  call<T = Record<string, unknown>>(
    service: keyof ContainerdClient['clients'],
    method: string,
    req: Record<string, unknown>,
  ): Promise<T> {
    const c = this.clients[service] as unknown as Record<string, Unary>;
    return new Promise<T>((res, rej) => {
      c[method]!.call(c, req, this.metadata(), (e, r) =>
        e
          ? rej(new ContainerdError(e.code, `containerd ${this.address}: ${method}: ${e.details || e.message}`))
          : res(r as T),
      );
    });
  }

  /** Store `bytes` in the content store under their digest, with labels (kept up to date if present). */
  async writeContent(digest: string, bytes: Buffer, labels: Record<string, string>): Promise<void> {
    const c = this.clients.content as unknown as {
      Write(md: Metadata): NodeJS.ReadWriteStream & { write(m: unknown): boolean };
    };
    try {
      await new Promise<void>((res, rej) => {
        const stream = c.Write(this.metadata());
        stream.on('data', () => {});
        stream.on('error', (e: ServiceError) =>
          rej(new ContainerdError(e.code, `containerd ${this.address}: write ${digest}: ${e.details || e.message}`)),
        );
        stream.on('end', () => res());
        stream.write({
          action: 'COMMIT',
          ref: `dadi-pull-${digest}`,
          total: bytes.length,
          expected: digest,
          offset: 0,
          data: bytes,
          labels,
        });
        stream.end();
      });
    } catch (e) {
      if (!(e instanceof ContainerdError && e.grpcCode === status.ALREADY_EXISTS)) throw e;
      const paths = Object.keys(labels).map((k) => `labels.${k}`);
      await this.call('content', 'Update', { info: { digest, labels }, update_mask: { paths } });
    }
  }

  close(): void {
    if (!this.owner) return;
    for (const c of Object.values(this.clients)) c.close();
  }

  private metadata(): Metadata {
    const md = new Metadata();
    md.set('containerd-namespace', this.namespace);
    if (this.lease) md.set('containerd-lease', this.lease);
    return md;
  }
}
