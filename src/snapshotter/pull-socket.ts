// The snapshotter's pull line socket (pull-wire.ts): a request is one line of JSON, the answer one
// line of JSON, then the connection ends. It performs the same pulls as the gRPC method on the
// snapshotter's socket; it exists so that `dadi pull` needs node:net only (no node:http2 to load,
// no HTTP/2 session to set up) on a container's start path. A PullAhead line (the CLI's hint as it
// starts: cli/pull-hint.ts) is handed to `ahead` and answered at once.

import { unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { DadiError } from '../errors.js';
import { lineReader, type PullAhead, type PullLineAnswer, type PullReply, type PullRequest } from './pull-wire.js';

export interface PullSocket {
  path: string;
  close(): Promise<void>;
}

/** Serve `pull` on the unix socket `path` (a stale socket file is replaced), and `ahead` when given. */
export async function servePullSocket(
  path: string,
  pull: (req: PullRequest) => Promise<PullReply>,
  ahead?: (req: PullRequest) => void,
): Promise<PullSocket> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    readLine(socket).then(
      (line) => {
        if (line === undefined) return;
        let req: PullRequest | PullAhead;
        try {
          req = JSON.parse(line) as PullRequest | PullAhead;
        } catch (e) {
          return answer(socket, failure(new DadiError('EINVAL', `pull request: ${(e as Error).message}`)));
        }
        if (ahead && req && typeof req === 'object' && 'ahead' in req) {
          try {
            ahead(req.ahead);
            return socket.end('{"ahead":true}\n');
          } catch (e) {
            return answer(socket, failure(e));
          }
        }
        pull(req as PullRequest).then(
          (reply) => answer(socket, { reply }),
          (e) => answer(socket, failure(e)),
        );
      },
      () => socket.destroy(),
    );
  });
  await unlink(path).catch(() => {});
  await new Promise<void>((res, rej) => {
    server.once('error', (e) => rej(new DadiError('EIO', `${path}: cannot listen: ${e.message}`, { cause: e })));
    server.listen(path, () => res());
  });
  return {
    path,
    close: async () => {
      await new Promise<void>((res) => {
        server.close(() => res());
        // A pull in flight is cut off, as the gRPC server's forced shutdown would.
        for (const s of sockets) s.destroy();
      });
      await unlink(path).catch(() => {});
    },
  };
}

/** The request line (without its newline), or undefined when the client went away first; bounded. */
function readLine(socket: Socket): Promise<string | undefined> {
  return new Promise((res, rej) => {
    const read = lineReader('pull request');
    const onData = (d: Buffer) => {
      let line: string | undefined;
      try {
        line = read(d);
      } catch (e) {
        socket.off('data', onData);
        return rej(e);
      }
      if (line === undefined) return;
      socket.off('data', onData);
      socket.off('end', onEnd);
      res(line);
    };
    const onEnd = () => res(undefined);
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}

function answer(socket: Socket, a: PullLineAnswer): void {
  socket.end(`${JSON.stringify(a)}\n`);
}

function failure(e: unknown): PullLineAnswer {
  const message = (e as Error)?.message ?? String(e);
  return { error: { code: e instanceof DadiError ? e.code : 'EIO', message } };
}
