// A freshly started snapshotter runs its first `dadi pull` on code V8 has never run: undici's HTTP
// parser (WebAssembly, compiled on the first connection, each function on its first call), the
// registry client, grpc-js's client channel and call paths, and the codecs of containerd's nested
// messages. A CPU profile of a cold start put ~50 ms of the pull's CPU there, on the critical path
// of the container's start (and on a 2-core host beside the daemon's mount of the same image).
// So the snapshotter runs one pull at start, before it serves: against a registry and a
// containerd of its own, in this process, on a private unix socket and a loopback port that
// exist only for it. Nothing outside the process is touched.

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { MediaType, OverlaybdAnnotation } from '../oci/index.js';
import { RegistryClient } from '../registry/index.js';
import { ContainerdClient } from './containerd-client.js';
import { containerdApi } from './protos.js';
import { type PullResult, pullIntoContainerd } from './pull.js';

/** Run one pull against in-process stand-ins of a registry and containerd; resolves when they are gone. */
export async function warmPullPath(): Promise<PullResult> {
  const dir = await mkdtemp(join(tmpdir(), 'dadi-warm-up-'));
  const registry = await startStubRegistry();
  const containerd = await startStubContainerd(join(dir, 'containerd.sock'));
  const client = new RegistryClient({ insecure: true, credentials: async () => undefined, p2pProxy: '' });
  const ctrd = new ContainerdClient(containerd.address, 'dadi-warm-up');
  try {
    return await pullIntoContainerd(`127.0.0.1:${registry.port}/dadi-warm-up:latest`, client, {
      address: containerd.address,
      connection: ctrd,
    });
  } finally {
    ctrd.close();
    await client.close().catch(() => {});
    containerd.server.forceShutdown();
    await new Promise<void>((res) => registry.server.close(() => res()));
    for (const s of registry.sockets) s.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A registry that serves one image: a manifest with one DADI layer (never fetched) and its config. */
async function startStubRegistry(): Promise<{ server: NetServer; port: number; sockets: Set<Socket> }> {
  const layer = digestOf('dadi-warm-up layer');
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: [
        {
          mediaType: MediaType.ociLayer,
          digest: layer,
          size: 4096,
          annotations: { [OverlaybdAnnotation.blobDigest]: layer, [OverlaybdAnnotation.blobSize]: '4096' },
        },
      ],
    }),
  );
  const bodies = new Map<string, { type: string; body: Buffer }>([
    ['/v2/dadi-warm-up/manifests/latest', { type: MediaType.ociManifest, body: manifest }],
    [`/v2/dadi-warm-up/blobs/${digestOf(config)}`, { type: 'application/octet-stream', body: config }],
  ]);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      // One request at a time per connection (the client pipelines none); bodies are never sent to it.
      for (let end = head.indexOf('\r\n\r\n'); end >= 0; end = head.indexOf('\r\n\r\n')) {
        const [method = '', path = ''] = head.slice(0, head.indexOf(' ', head.indexOf(' ') + 1)).split(' ');
        head = head.slice(end + 4);
        const hit = bodies.get(path);
        const lines = hit
          ? ['HTTP/1.1 200 OK', `Content-Type: ${hit.type}`, `Content-Length: ${hit.body.length}`]
          : ['HTTP/1.1 404 Not Found', 'Content-Length: 0'];
        if (hit) lines.push(`Docker-Content-Digest: ${digestOf(hit.body)}`);
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (hit && method !== 'HEAD') socket.write(hit.body);
      }
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, sockets };
}

/** containerd's calls a pull makes, answered as containerd would for a remote snapshotter's layer. */
async function startStubContainerd(socket: string): Promise<{ server: Server; address: string }> {
  const api = containerdApi();
  const server = new Server();
  const ok =
    (reply: (req: Record<string, unknown>) => unknown) =>
    (call: ServerUnaryCall<Record<string, unknown>, unknown>, cb: sendUnaryData<unknown>) =>
      cb(null, reply(call.request));
  server.addService(api.Leases.service, {
    Create: ok((r) => ({ lease: { id: r.id, labels: r.labels } })),
    Delete: ok(() => ({})),
  });
  server.addService(api.Snapshots.service, {
    Prepare: (_call: unknown, cb: sendUnaryData<unknown>) =>
      cb({ code: status.ALREADY_EXISTS, details: 'remote snapshot' }),
  });
  server.addService(api.Content.service, {
    Write: (call: ServerDuplexStream<Record<string, unknown>, unknown>) => {
      call.on('data', (m) => call.write({ action: m.action, offset: m.total, total: m.total, digest: m.expected }));
      call.on('end', () => call.end());
    },
  });
  server.addService(api.Images.service, { Create: ok((r) => ({ image: r.image })) });
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  return { server, address: socket };
}

function digestOf(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
