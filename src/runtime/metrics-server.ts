// The HTTP endpoint Prometheus scrapes: GET /metrics on the configured address, nothing else.
// An address without a host listens on loopback only: metrics name images and devices, and an
// operator opens them wider on purpose (`0.0.0.0:9100`), never by default.

import { createServer, type Server } from 'node:http';
import { DadiError } from '../errors.js';

export interface MetricsAddress {
  host: string;
  port: number;
}

/** Parse `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT` (loopback), naming `what` (the flag or key) in errors. */
export function parseMetricsAddress(text: string, what: string): MetricsAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]*):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new DadiError('EINVAL', `${what}: "${text}" is not HOST:PORT (e.g. 127.0.0.1:9100)`);
  }
  const host = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '127.0.0.1' : host, port };
}

export function metricsUrl(a: MetricsAddress): string {
  return `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics`;
}

export interface MetricsServer {
  /** The address it listens on (the real port when 0 was asked). */
  address: MetricsAddress;
  url: string;
  close(): Promise<void>;
}

/** Serve `exposition()` at /metrics on `addr`; fails with EADDRINUSE-style errors naming the address. */
export async function serveMetrics(
  addr: MetricsAddress,
  exposition: () => Promise<string>,
  contentType: string,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('dadi daemon: only GET /metrics here\n');
      return;
    }
    exposition().then(
      (text) => res.writeHead(200, { 'content-type': contentType }).end(text),
      (e) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new DadiError('EIO', `metrics address ${addr.host}:${addr.port}: ${(e as Error).message}`, { cause: e })),
    );
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address();
  const address = { host: addr.host, port: typeof a === 'object' && a ? a.port : addr.port };
  return {
    address,
    url: metricsUrl(address),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        // A scraper's keep-alive connection must not hold the daemon's shutdown.
        server.closeAllConnections();
      }),
  };
}
