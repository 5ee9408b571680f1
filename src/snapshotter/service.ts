// containerd's snapshots.v1 gRPC service (what `[proxy_plugins.NAME] type = "snapshot"` talks to)
// served on a unix socket over a Snapshotter: decoding requests, encoding infos and mounts, and
// mapping errors to the gRPC codes containerd turns back into its own (ALREADY_EXISTS is how a
// DADI layer tells containerd's unpacker to skip the download).

import { mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { DadiError } from '../errors.js';
import { containerdApi } from './protos.js';
import { type PullService, pullServiceDefinition } from './pull-service.js';
import { servePullSocket } from './pull-socket.js';
import { type PullRequest, pullSocketOf } from './pull-wire.js';
import { SnapshotError, type SnapshotInfo, type Snapshotter } from './snapshotter.js';

interface WireInfo {
  name: string;
  parent: string;
  kind: string;
  created_at: { seconds: string; nanos: number };
  updated_at: { seconds: string; nanos: number };
  labels: Record<string, string>;
}

type Req = Record<string, unknown> & { key?: string; parent?: string; labels?: Record<string, string> };

export interface SnapshotService {
  address: string;
  stop(): Promise<void>;
}

/** Where the service reports: failures as warnings, and every call with its duration at debug level. */
export interface ServiceLog {
  warn(message: string): void;
  debug?(message: string, fields?: Record<string, unknown>): void;
}

/**
 * Serve `snap` on the unix socket `address` (a stale socket file is replaced), and with `pull`
 * the pulls `dadi pull` asks of the snapshotter (pull-service.ts) on the same socket and on the
 * line socket beside it (pullSocketOf).
 */
export async function serveSnapshots(
  snap: Snapshotter,
  address: string,
  log: ServiceLog = { warn: logToStderr },
  pull?: Pick<PullService, 'pull' | 'close' | 'headStart'>,
): Promise<SnapshotService> {
  const server = new Server();
  const unary =
    <T>(name: string, fn: (req: Req) => Promise<T>) =>
    (call: ServerUnaryCall<Req, T>, cb: sendUnaryData<T>) => {
      const t0 = performance.now();
      // What a container start waits for shows here (profile with logConfig.logLevel: debug).
      const done = (outcome: string) =>
        log.debug?.(`${name} ${call.request.key ?? call.request.name ?? call.request.ref ?? ''}: ${outcome}`, {
          ms: Math.round(performance.now() - t0),
        });
      fn(call.request).then(
        (r) => {
          done('ok');
          cb(null, r);
        },
        (e) => {
          const exists = e instanceof SnapshotError && e.status === 'ALREADY_EXISTS';
          done(exists ? 'already exists' : 'failed');
          if (!exists) log.warn(`${name}: ${(e as Error).message}`);
          cb(toGrpcError(e));
        },
      );
    };
  const impl: UntypedServiceImplementation = {
    Prepare: unary('Prepare', async (r) => ({
      mounts: await snap.prepare(r.key ?? '', r.parent ?? '', r.labels ?? {}),
    })),
    View: unary('View', async (r) => ({ mounts: await snap.view(r.key ?? '', r.parent ?? '', r.labels ?? {}) })),
    Mounts: unary('Mounts', async (r) => ({ mounts: await snap.mounts(r.key ?? '') })),
    Commit: unary('Commit', async (r) => {
      await snap.commit(String(r.name ?? ''), r.key ?? '', r.labels ?? {});
      return {};
    }),
    Remove: unary('Remove', async (r) => {
      await snap.remove(r.key ?? '');
      return {};
    }),
    Stat: unary('Stat', async (r) => ({ info: toWire(await snap.stat(r.key ?? '')) })),
    Update: unary('Update', async (r) => {
      const info = (r.info ?? {}) as { name?: string; labels?: Record<string, string> };
      const paths = ((r.update_mask as { paths?: string[] } | null)?.paths ?? []) as string[];
      return { info: toWire(await snap.update(info.name ?? '', info.labels ?? {}, paths)) };
    }),
    Usage: unary('Usage', async (r) => snap.usage(r.key ?? '')),
    Cleanup: unary('Cleanup', async () => {
      await snap.cleanup();
      return {};
    }),
    List: (call: ServerWritableStream<Req, unknown>) => {
      snap.walk((call.request.filters as string[] | undefined) ?? []).then(
        (infos) => {
          // Batches keep each message small however many snapshots there are.
          for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100).map(toWire) });
          call.end();
        },
        (e) => call.emit('error', toGrpcError(e)),
      );
    },
  };
  server.addService(containerdApi().Snapshots.service, impl);
  if (pull)
    server.addService(pullServiceDefinition, { Pull: unary('Pull', (r) => pull.pull(r as unknown as PullRequest)) });
  await mkdir(dirname(address), { recursive: true, mode: 0o700 });
  await unlink(address).catch(() => {});
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (e) =>
      e ? rej(new DadiError('EIO', `${address}: cannot listen: ${e.message}`, { cause: e })) : res(),
    ),
  );
  // The same pulls on the line socket, which `dadi pull` tries first (pull-wire.ts).
  const lines = pull
    ? await servePullSocket(
        pullSocketOf(address),
        (req) => {
          const t0 = performance.now();
          const done = (outcome: string) =>
            log.debug?.(`Pull ${req?.ref ?? ''} (line socket): ${outcome}`, { ms: Math.round(performance.now() - t0) });
          return pull.pull(req).then(
            (r) => {
              done('ok');
              return r;
            },
            (e: unknown) => {
              done('failed');
              log.warn(`Pull: ${(e as Error).message}`);
              throw e;
            },
          );
        },
        (req) => {
          pull.headStart(req);
          log.debug?.(`Pull ${req?.ref ?? ''} ahead (line socket): head start`);
        },
      ).catch((e: unknown) => {
        server.forceShutdown();
        throw e;
      })
    : undefined;
  return {
    address,
    stop: async () => {
      await lines?.close();
      await new Promise<void>((res) => {
        server.tryShutdown(() => res());
        setTimeout(() => server.forceShutdown(), 5000).unref();
      });
      await pull?.close();
    },
  };
}

function toWire(i: SnapshotInfo): WireInfo {
  const ts = (d: Date) => ({ seconds: String(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1e6 });
  return {
    name: i.name,
    parent: i.parent,
    kind: i.kind,
    created_at: ts(i.createdAt),
    updated_at: ts(i.updatedAt),
    labels: i.labels,
  };
}

function toGrpcError(e: unknown): { code: status; details: string } {
  const message = (e as Error)?.message ?? String(e);
  if (e instanceof SnapshotError) return { code: status[e.status], details: message };
  if (e instanceof DadiError) {
    const code =
      e.code === 'ENOTFOUND'
        ? status.NOT_FOUND
        : e.code === 'EEXIST'
          ? status.ALREADY_EXISTS
          : e.code === 'EINVAL'
            ? status.INVALID_ARGUMENT
            : status.UNKNOWN;
    return { code, details: message };
  }
  return { code: status.UNKNOWN, details: message };
}

function logToStderr(m: string): void {
  process.stderr.write(`dadi snapshotter: ${m}\n`);
}
