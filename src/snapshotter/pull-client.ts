// The client side of the snapshotter's pull (pull-wire.ts): one line of JSON each way on the pull's
// line socket beside the snapshotter's, with node:net alone; for a snapshotter without that socket,
// one gRPC unary call spoken with node:http2 (loaded then only) over the snapshotter's own socket.
// Either way `dadi pull` loads no gRPC library. A snapshotter that is not there (no socket, nobody
// listening) or predates the method is told apart from a pull that failed, so the CLI can pull
// in-process instead.

import type { ClientHttp2Session, IncomingHttpHeaders } from 'node:http2';
import { connect as connectSocket } from 'node:net';
import { DadiError } from '../errors.js';
import {
  lineReader,
  MAX_PULL_MESSAGE_BYTES,
  PULL_METHOD_PATH,
  type PullLineAnswer,
  type PullReply,
  type PullRequest,
  pullSocketOf,
} from './pull-wire.js';

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
  const answered = await pullOverLine(address, req, timeoutMs);
  if (answered) return answered;
  const session = await open(address);
  try {
    return await call(session, address, req, timeoutMs);
  } finally {
    session.destroy();
  }
}

/**
 * The pull over the line socket beside `address`; undefined when nothing listens there (no socket
 * file, or a stale one): a snapshotter older than the line socket, or none.
 */
function pullOverLine(address: string, req: PullRequest, timeoutMs: number): Promise<PullReply | undefined> {
  return new Promise((res, rej) => {
    const socket = connectSocket(pullSocketOf(address));
    let connected = false;
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      f();
    };
    const timer = setTimeout(
      () =>
        settle(() =>
          rej(new DadiError('ETIMEDOUT', `dadi snapshotter ${address}: no answer to the pull within ${timeoutMs} ms`)),
        ),
      timeoutMs,
    );
    const read = lineReader(`dadi snapshotter ${address}: pull reply`);
    socket.once('error', (e: NodeJS.ErrnoException) =>
      settle(() =>
        !connected && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
          ? res(undefined)
          : rej(new DadiError('EIO', `dadi snapshotter ${address}: ${e.message}`, { cause: e })),
      ),
    );
    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(req)}\n`);
    });
    socket.on('data', (d: Buffer) => {
      let line: string | undefined;
      try {
        line = read(d);
      } catch (e) {
        return settle(() => rej(e));
      }
      if (line !== undefined) settle(() => answerOf(address, line).then(res, rej));
    });
    socket.once('close', () =>
      settle(() => rej(new DadiError('EIO', `dadi snapshotter ${address}: the pull ended without an answer`))),
    );
  });
}

async function answerOf(address: string, line: string): Promise<PullReply> {
  let a: PullLineAnswer;
  try {
    a = JSON.parse(line) as PullLineAnswer;
  } catch (e) {
    throw new DadiError(
      'EFORMAT',
      `dadi snapshotter ${address}: a pull answer that is not JSON: ${(e as Error).message}`,
    );
  }
  if ('reply' in a && a.reply && typeof a.reply === 'object') return a.reply;
  if ('error' in a && a.error && typeof a.error.message === 'string') {
    // As over gRPC (replyOf): a missing image stays that, any other failure is the pull's.
    throw new DadiError(a.error.code === 'ENOTFOUND' ? 'ENOTFOUND' : 'EIO', a.error.message || 'pull failed');
  }
  throw new DadiError('EFORMAT', `dadi snapshotter ${address}: a malformed pull answer`);
}

async function open(address: string): Promise<ClientHttp2Session> {
  const { connect } = await import('node:http2');
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
