// One P2P agent as its own process, for the real-process scale test (agents.ts): the agent of
// src/swarm/agent.ts (as `dadi daemon` runs it) with its own port and block cache, built to
// JavaScript beforehand (no tsx per process: 200 of them must fit in memory). Protocol on stdio:
// prints `ready`, reads the whole blob through the tree after a `go` line, prints one JSON line
// (time, bytes by source, digest check), keeps serving its children until stdin closes.
//
//   node agent-proc.mjs DIST ROOT_URL REGISTRY REPO DIGEST SIZE ID CACHE_DIR CHUNK_TIMEOUT_MS

import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

const [dist, root, registry, repository, digest, sizeText, id, cacheDir, timeoutText] = process.argv.slice(2);
const size = Number(sizeText);
const { P2PAgent } = await import(`${dist}/swarm/agent.js`);
const { BlockCache } = await import(`${dist}/cache/index.js`);
const { RegistryClient } = await import(`${dist}/registry/index.js`);
const { CHUNK_SIZE } = await import(`${dist}/p2p/chunks.js`);

const cache = await BlockCache.open(cacheDir, { refillSize: CHUNK_SIZE });
const client = new RegistryClient({ insecure: true });
const agent = await P2PAgent.start({
  root,
  listen: '127.0.0.1:0',
  hostId: id,
  client,
  credentials: async () => undefined,
  cache,
  chunkTimeoutMs: Number(timeoutText),
  log: () => {},
});
const lines = createInterface({ input: process.stdin });
const next = () => new Promise((resolve) => lines.once('line', resolve));
process.stdout.write('ready\n');
await next();

const start = performance.now();
const buf = new Uint8Array(size);
let error;
try {
  const blob = await agent.open({ registry, repository, digest, size }, size);
  // Four chunk reads in flight, as the cache's readahead keeps.
  let at = 0;
  const worker = async () => {
    while (at < size) {
      const offset = at;
      at += CHUNK_SIZE;
      await blob.read(buf.subarray(offset, Math.min(size, offset + CHUNK_SIZE)), offset);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
} catch (e) {
  error = String(e?.message ?? e);
}
const ms = performance.now() - start;
const ok = !error && `sha256:${createHash('sha256').update(buf).digest('hex')}` === digest;
const c = agent.counters.snapshot();
// Chunks this agent took in (fetched or pushed): the unit of its CPU cost.
const chunks = c.requests.registry + c.requests.root + c.requests.peer + c.receivedPushes;
process.stdout.write(
  `${JSON.stringify({ id, ms, ok, error, bytes: c.bytes, chunks, served: c.servedRequests + c.pushedChunks, fallbacks: c.registryFallbacks })}\n`,
);

// Children may still be reading from this agent: serve until told to stop.
await new Promise((resolve) => lines.once('close', resolve));
await agent.close();
await client.close();
process.exit(0);
