// The pull request between `dadi pull` (node:http2, pull-client.ts) and the snapshotter (grpc-js,
// pull-service.ts's definition): a reply arrives whole, a failed pull's message arrives as the
// error, and a snapshotter that is absent or lacks the method is told apart from a failed pull.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { pullThroughSnapshotter, SnapshotterUnavailable } from './pull-client.js';
import { pullServiceDefinition } from './pull-service.js';
import { type PullSocket, servePullSocket } from './pull-socket.js';
import { type PullReply, type PullRequest, pullSocketOf } from './pull-wire.js';

const request: PullRequest = {
  ref: 'reg.lan:5000/app:v1',
  containerdAddress: '/run/containerd/containerd.sock',
  namespace: 'default',
  snapshotter: 'dadi',
  insecure: true,
};

describe('pull through the snapshotter', () => {
  let dir: string;
  let server: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-pull-client-'));
  });
  afterEach(async () => {
    server?.forceShutdown();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  /** A server on a socket in `dir` answering Pull with `answer` (or without the method at all). */
  const serve = async (answer?: (req: PullRequest) => PullReply) => {
    server = new Server();
    if (answer) {
      server.addService(pullServiceDefinition, {
        Pull: (call: ServerUnaryCall<PullRequest, PullReply>, cb: sendUnaryData<PullReply>) => {
          try {
            cb(null, answer(call.request));
          } catch (e) {
            cb({ code: status.UNKNOWN, details: (e as Error).message });
          }
        },
      });
    }
    const address = join(dir, 'snap.sock');
    await new Promise<void>((res, rej) =>
      server!.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
    );
    return address;
  };

  it('sends the request and returns the reply', async () => {
    const seen: PullRequest[] = [];
    const steps = Array.from({ length: 300 }, (_, i) => ({ step: `step ${i} ${'x'.repeat(50)}`, ms: i }));
    const address = await serve((req) => {
      seen.push(req);
      return { name: req.ref, manifestDigest: `sha256:${'a'.repeat(64)}`, layers: 2, registryBytes: 1234, steps };
    });
    const r = await pullThroughSnapshotter(address, request);
    expect(seen).toEqual([request]);
    expect(r).toEqual({
      name: request.ref,
      manifestDigest: `sha256:${'a'.repeat(64)}`,
      layers: 2,
      registryBytes: 1234,
      steps,
    });
  });

  it("a failed pull's message (any characters) becomes the error", async () => {
    const why = 'reg.lan:5000/app:v1: layer 0 (sha256:…) is not a DADI layer; 100% sure, ünïcode';
    const address = await serve(() => {
      throw new Error(why);
    });
    const e = await pullThroughSnapshotter(address, request).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DadiError);
    expect(e).not.toBeInstanceOf(SnapshotterUnavailable);
    expect((e as Error).message).toBe(why);
  });

  it('no socket, a socket nobody listens on, and a server without the method are "unavailable"', async () => {
    const none = join(dir, 'none.sock');
    await expect(pullThroughSnapshotter(none, request)).rejects.toThrow(SnapshotterUnavailable);
    const stale = join(dir, 'stale.sock');
    await writeFile(stale, '');
    await expect(pullThroughSnapshotter(stale, request)).rejects.toBeInstanceOf(SnapshotterUnavailable);
    const bare = await serve();
    await expect(pullThroughSnapshotter(bare, request)).rejects.toThrow(/has no pull method/);
    await expect(pullThroughSnapshotter(bare, request)).rejects.toBeInstanceOf(SnapshotterUnavailable);
  });

  it('a pull that does not answer in time is an error, not a hang', async () => {
    server = new Server();
    server.addService(pullServiceDefinition, { Pull: () => {} });
    const address = join(dir, 'slow.sock');
    await new Promise<void>((res, rej) =>
      server!.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
    );
    await expect(pullThroughSnapshotter(address, request, 200)).rejects.toThrow(/no answer to the pull within 200 ms/);
  });
});

describe('pull through the line socket', () => {
  let dir: string;
  let lines: PullSocket | undefined;
  let server: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-pull-line-'));
  });
  afterEach(async () => {
    await lines?.close();
    lines = undefined;
    server?.forceShutdown();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const reply = (req: PullRequest): PullReply => ({
    name: req.ref,
    manifestDigest: `sha256:${'b'.repeat(64)}`,
    layers: 1,
    registryBytes: 99,
    steps: [{ step: 'resolve', ms: 3 }],
  });

  it('is used before the gRPC method when the snapshotter has it', async () => {
    const address = join(dir, 'snap.sock');
    const seen: string[] = [];
    lines = await servePullSocket(pullSocketOf(address), async (req) => {
      seen.push(`line ${req.ref}`);
      return reply(req);
    });
    // The gRPC method on the snapshotter's own socket answers too: it must not be asked.
    server = new Server();
    server.addService(pullServiceDefinition, {
      Pull: (call: ServerUnaryCall<PullRequest, PullReply>, cb: sendUnaryData<PullReply>) => {
        seen.push(`grpc ${call.request.ref}`);
        cb(null, reply(call.request));
      },
    });
    await new Promise<void>((res, rej) =>
      server!.bindAsync(`unix:${address}`, ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
    );
    expect(await pullThroughSnapshotter(address, request)).toEqual(reply(request));
    expect(seen).toEqual([`line ${request.ref}`]);
  });

  it("a failed pull's message and its not-found code come back; other codes are EIO", async () => {
    const address = join(dir, 'snap.sock');
    const why = 'reg.lan:5000/app:v1: not found, ünïcode\nsecond line';
    let code: 'ENOTFOUND' | 'EUNSUPPORTED' = 'ENOTFOUND';
    lines = await servePullSocket(pullSocketOf(address), async () => {
      throw new DadiError(code, why);
    });
    const e = await pullThroughSnapshotter(address, request).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DadiError);
    expect(e).not.toBeInstanceOf(SnapshotterUnavailable);
    expect((e as DadiError).code).toBe('ENOTFOUND');
    expect((e as Error).message).toBe(why);
    code = 'EUNSUPPORTED';
    const e2 = await pullThroughSnapshotter(address, request).catch((x: unknown) => x);
    expect((e2 as DadiError).code).toBe('EIO');
    expect((e2 as Error).message).toBe(why);
  });

  it('a request that is not JSON is answered with an error, and a stale line socket falls back to gRPC', async () => {
    const address = join(dir, 'snap.sock');
    lines = await servePullSocket(pullSocketOf(address), async (req) => reply(req));
    expect(JSON.parse(await sendLine(pullSocketOf(address), '{not json'))).toMatchObject({ error: { code: 'EINVAL' } });
    await lines.close();
    lines = undefined;
    await writeFile(pullSocketOf(address), '');
    await expect(pullThroughSnapshotter(address, request)).rejects.toBeInstanceOf(SnapshotterUnavailable);
  });

  it("hands a PullAhead line to the snapshotter's ahead and answers at once; a refused one is an error", async () => {
    const address = join(dir, 'snap.sock');
    const ahead: PullRequest[] = [];
    const pulls: string[] = [];
    lines = await servePullSocket(
      pullSocketOf(address),
      async (req) => {
        pulls.push(req.ref);
        return reply(req);
      },
      (req) => {
        if (!req?.ref)
          throw new DadiError('EINVAL', 'pull request: ref, containerdAddress, namespace and snapshotter are needed');
        ahead.push(req);
      },
    );
    const send = (line: string) => sendLine(pullSocketOf(address), line);
    expect(JSON.parse(await send(JSON.stringify({ ahead: request })))).toEqual({ ahead: true });
    expect(ahead).toEqual([request]);
    expect(JSON.parse(await send(JSON.stringify({ ahead: {} })))).toMatchObject({ error: { code: 'EINVAL' } });
    expect(pulls).toEqual([]);
    // The pull that follows is an ordinary request.
    expect(await pullThroughSnapshotter(address, request)).toEqual(reply(request));
    expect(pulls).toEqual([request.ref]);
  });

  it('a pull that does not answer in time is an error, not a hang', async () => {
    const address = join(dir, 'slow.sock');
    lines = await servePullSocket(pullSocketOf(address), () => new Promise<PullReply>(() => {}));
    await expect(pullThroughSnapshotter(address, request, 200)).rejects.toThrow(/no answer to the pull within 200 ms/);
  });
});

/** One line to a line socket, as a client other than dadi's might send it; resolves with what came back. */
function sendLine(path: string, line: string): Promise<string> {
  return new Promise<string>((res, rej) => {
    const c = connect(path);
    let got = '';
    c.on('data', (d) => {
      got += d.toString();
    });
    c.on('end', () => res(got));
    c.on('error', rej);
    c.write(`${line}\n`);
  });
}
