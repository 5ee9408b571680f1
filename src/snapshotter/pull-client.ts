// The client side of the snapshotter's pull method (pull-wire.ts): one gRPC unary call spoken with
// node:http2 over the snapshotter's unix socket, so that `dadi pull` loads no gRPC library. A
// snapshotter that is not there (no socket, nobody listening) or predates the method is told
// apart from a pull that failed, so the CLI can pull in-process instead.

import { type ClientHttp2Session, connect, type IncomingHttpHeaders } from 'node:http2';
import { connect as connectSocket } from 'node:net';
import { DadiError } from '../errors.js';
import { MAX_PULL_MESSAGE_BYTES, PULL_METHOD_PATH, type PullReply, type PullRequest } from './pull-wire.js';

/** No snapshotter answers the pull method at this address. */
export class SnapshotterUnavailable extends DadiError {
  constructor(address: string, why: string) {
    super('ENOTFOUND', `dadi snapshotter ${address}: ${why}`);
  }
}

const GRPC_NOT_FOUND = 5;
const GRPC_UNIMPLEMENTED = 12;
/** A pull's own steps are bounded (registry retries, containerd calls); this bounds the call itself. */
const DEFAULT_TIMEOUT_MS = 600_000;

/** Ask the snapshotter listening on `address` to pull. */
export async function pullThroughSnapshotter(
  address: string,
  req: PullRequest,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<PullReply> {
  const session = await open(address);
  try {
    return await call(session, address, req, timeoutMs);
  } finally {
    session.destroy();
  }
}

function open(address: string): Promise<ClientHttp2Session> {
  return new Promise((res, rej) => {
    const socket = connectSocket(address);
    socket.once('error', (e: NodeJS.ErrnoException) =>
      rej(
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? new SnapshotterUnavailable(address, `not running (${e.code})`)
          : new DadiError('EIO', `dadi snapshotter ${address}: ${e.message}`, { cause: e }),
      ),
    );
    socket.once('connect', () => {
      const session = connect('http://localhost', { createConnection: () => socket });
      session.once('error', (e) => rej(new DadiError('EIO', `dadi snapshotter ${address}: ${e.message}`)));
      res(session);
    });
  });
}

function call(session: ClientHttp2Session, address: string, req: PullRequest, timeoutMs: number): Promise<PullReply> {
  return new Promise((res, rej) => {
    const body = Buffer.from(JSON.stringify(req));
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const stream = session.request({
      ':method': 'POST',
      ':path': PULL_METHOD_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let failure: DadiError | undefined;
    const abort = (e: DadiError) => {
      failure ??= e;
      stream.close();
    };
    const timer = setTimeout(
      () =>
        abort(new DadiError('ETIMEDOUT', `dadi snapshotter ${address}: no answer to the pull within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const chunks: Buffer[] = [];
    let size = 0;
    // The status comes in the trailers, or in the headers of a trailers-only reply (an error).
    let status: IncomingHttpHeaders = {};
    stream.on('response', (headers) => {
      status = headers;
    });
    stream.on('trailers', (trailers) => {
      status = { ...status, ...trailers };
    });
    stream.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= MAX_PULL_MESSAGE_BYTES + 5) chunks.push(d);
      else
        abort(new DadiError('ERANGE', `dadi snapshotter ${address}: pull reply over ${MAX_PULL_MESSAGE_BYTES} bytes`));
    });
    stream.on('error', (e) => abort(new DadiError('EIO', `dadi snapshotter ${address}: ${e.message}`, { cause: e })));
    stream.on('close', () => {
      clearTimeout(timer);
      if (failure) return rej(failure);
      try {
        res(replyOf(address, status, Buffer.concat(chunks)));
      } catch (e) {
        rej(e);
      }
    });
    stream.end(frame);
  });
}

function replyOf(address: string, status: IncomingHttpHeaders, body: Buffer): PullReply {
  const code = Number(status['grpc-status'] ?? -1);
  const message = decodeURIComponent(String(status['grpc-message'] ?? ''));
  if (code === GRPC_UNIMPLEMENTED) throw new SnapshotterUnavailable(address, 'has no pull method');
  if (code === -1) throw new DadiError('EIO', `dadi snapshotter ${address}: the pull ended without a status`);
  if (code !== 0)
    throw new DadiError(code === GRPC_NOT_FOUND ? 'ENOTFOUND' : 'EIO', message || `pull failed (gRPC ${code})`);
  const len = body.length >= 5 ? body.readUInt32BE(1) : -1;
  if (len < 0 || body.length !== 5 + len)
    throw new DadiError('EFORMAT', `dadi snapshotter ${address}: a malformed pull reply`);
  try {
    return JSON.parse(body.subarray(5).toString()) as PullReply;
  } catch (e) {
    throw new DadiError(
      'EFORMAT',
      `dadi snapshotter ${address}: a pull reply that is not JSON: ${(e as Error).message}`,
    );
  }
}
