// A process's first HTTP request pays for undici's start: its HTTP parser (WebAssembly) compiled
// and instantiated, and its request path run cold for the first time. Measured here: 30-80 ms for
// the first request to a loopback server, 1-10 ms for the next ones. The daemon makes one such
// request to itself before it listens, so that the first registry request of the first start it
// serves (the manifest of `dadi run`'s image, on the launch path) does not pay it.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

/** Give up on the warm-up after this long (it only saves time; nothing depends on it). */
const WARM_TIMEOUT_MS = 2_000;

/** One GET through undici to a throwaway loopback server; never throws. */
export async function warmHttpClient(): Promise<void> {
  const server = createServer((_req, res) => {
    res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-1/2' });
    res.end('{}');
  });
  let pool: Pool | undefined;
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(0, '127.0.0.1', ok);
    });
    const { port } = server.address() as AddressInfo;
    pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 });
    const r = await pool.request({
      path: '/v2/',
      method: 'GET',
      headers: { range: 'bytes=0-1' },
      signal: AbortSignal.timeout(WARM_TIMEOUT_MS),
    });
    await r.body.arrayBuffer();
  } catch {
    // A start that is not warmed is only slower.
  } finally {
    await pool?.destroy().catch(() => {});
    server.closeAllConnections();
    server.close();
  }
}
