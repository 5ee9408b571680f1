// Whom the P2P agent blames, in process on loopback (a root, agents, an in-memory registry):
// - failing to load what peers' chunks are checked against (the digest list cannot be read) is the
//   host's own failure: no peer is reported, the chunk comes from the root, the bytes are right;
// - a parent that waits for the chunk itself and says so (heartbeats) is waited for; one that says
//   nothing (a dead host) is hedged to the next hop up once silent for the hedge delay (250 ms
//   here), long before the deadline (1 s) or the 10 s cap; the hedge's bytes are used, the parent
//   is reported slow;
// - a digest list with chunks larger than the agent's (p2pConfig.chunkSize) cannot check them: the
//   agent says so and checks by ZFile CRCs (none here) instead, still reading the right bytes; one
//   with smaller chunks checks each of the agent's chunks by the several digests it spans.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockCache } from '../cache/index.js';
import type { Digest } from '../oci/digest.js';
import { CHUNK_DIGESTS_MEDIA_TYPE, computeChunkDigests, encodeChunkDigests } from '../p2p/chunk-digests.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { RegistryClient } from '../registry/index.js';
import { MemoryRegistry, serveRoute } from '../registry/testing.js';
import { P2PAgent } from './agent.js';
import type { P2PRoot } from './root.js';
import { startTestRoot, TestAgents } from './testing.js';

const SIZE = 3 * CHUNK_SIZE + 777;

describe('P2P agent: whom it blames', () => {
  let dir: string;
  let registry: { host: string; close: () => Promise<void> };
  let reg: MemoryRegistry;
  let root: P2PRoot;
  let agents: TestAgents;
  const caches: BlockCache[] = [];
  const clients: RegistryClient[] = [];
  const servers: Server[] = [];
  const rootLog: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-agent-blame-'));
    agents = new TestAgents(dir, () => root.url);
    reg = new MemoryRegistry();
    registry = await serveRoute(reg.route);
    root = await startTestRoot(join(dir, 'root'), { log: (m) => rootLog.push(m) });
  });

  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await agents?.close();
    for (const c of clients) await c.close();
    for (const c of caches) await c.close();
    await root?.close();
    await registry?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const startAgent = async (id: string, chunkSize = CHUNK_SIZE) => {
    const log: string[] = [];
    const agent = await agents.start(id, { chunkSize, log: (m) => log.push(m) });
    return { agent, log };
  };

  /** A blob in the registry, with its chunk digest list (or a descriptor of a list that is not there). */
  const blob = (listThere: boolean, listChunk = CHUNK_SIZE) => {
    const bytes = randomBytes(SIZE);
    const digest = reg.putBlob('r', bytes);
    const list = encodeChunkDigests(computeChunkDigests(bytes, digest, listChunk));
    const listDigest = listThere
      ? reg.putBlob('r', list)
      : (`sha256:${createHash('sha256').update('not published').digest('hex')}` as Digest);
    return {
      bytes,
      digest,
      chunkDigests: { mediaType: CHUNK_DIGESTS_MEDIA_TYPE, digest: listDigest, size: list.length },
    };
  };

  const read = async (a: P2PAgent, b: ReturnType<typeof blob>, offset: number, length: number) => {
    const f = await a.open(
      { registry: registry.host, repository: 'r', digest: b.digest, size: SIZE, chunkDigests: b.chunkDigests },
      SIZE,
    );
    const buf = Buffer.alloc(length);
    expect(await f.read(buf, offset)).toBe(length);
    await f.close();
    return buf.equals(b.bytes.subarray(offset, offset + length));
  };
  const parentOf = (a: P2PAgent) => (a.status() as { blobs: { parent: string | null }[] }).blobs.at(-1)?.parent;

  it('does not blame its parent when it cannot load the digest list: the chunk comes from the root', async () => {
    const b = blob(false);
    const d = await startAgent('D');
    expect(await read(d.agent, b, 0, CHUNK_SIZE)).toBe(true);
    const e = await startAgent('E');
    expect(await read(e.agent, b, CHUNK_SIZE, 2 * CHUNK_SIZE)).toBe(true);
    expect(parentOf(e.agent)).toBe('D');
    const c = e.agent.counters.snapshot();
    expect(c.bytes.peer).toBe(0);
    expect(c.bytes.root).toBe(2 * CHUNK_SIZE);
    expect(c.failures.peer).toBe(0);
    expect(c.reparents).toBe(0);
    expect(e.log.some((m) => /chunk 1: cannot load .* this host's own failure, no peer blamed/.test(m))).toBe(true);
    expect(rootLog.filter((m) => m.includes('reports'))).toEqual([]);
  });

  it('waits for a parent that sends heartbeats; hedges one that went silent to the root, reports it slow', async () => {
    const b = blob(true);
    const f = await startAgent('F');
    expect(await read(f.agent, b, 0, SIZE)).toBe(true);
    const g = await startAgent('G');
    expect(await read(g.agent, b, 0, CHUNK_SIZE)).toBe(true);
    expect(parentOf(g.agent)).toBe('F');
    // F goes; in its place a parent that first waits 600 ms for each chunk itself, telling the
    // child so every 100 ms (HTTP 102, as serveChild does), then goes silent (a dead host).
    const port = Number(new URL(f.agent.address).port);
    await f.agent.close();
    let silent = false;
    const fake = createServer((req, res) => {
      req.resume();
      if (silent) return;
      const [from, to] = /bytes=(\d+)-(\d+)/
        .exec(req.headers.range ?? '')!
        .slice(1)
        .map(Number) as [number, number];
      let beats = 0;
      const t = setInterval(() => {
        if (++beats < 6) return res.writeProcessing();
        clearInterval(t);
        res.writeHead(206, { 'content-length': to - from + 1, 'content-range': `bytes ${from}-${to}/${SIZE}` });
        res.end(b.bytes.subarray(from, to + 1));
      }, 100);
      res.on('close', () => clearInterval(t));
    });
    servers.push(fake);
    await new Promise<void>((r) => fake.listen(port, '127.0.0.1', () => r()));
    const peerBytes = g.agent.counters.snapshot().bytes.peer;
    expect(await read(g.agent, b, CHUNK_SIZE, CHUNK_SIZE)).toBe(true);
    // Past the 250 ms hedge delay but never silent that long: not hedged, the parent's bytes used.
    expect(g.agent.counters.snapshot().hedgedRequests).toBe(0);
    expect(g.agent.counters.snapshot().bytes.peer - peerBytes).toBe(CHUNK_SIZE);
    silent = true;
    const rootBytes = g.agent.counters.snapshot().bytes.root;
    expect(await read(g.agent, b, 2 * CHUNK_SIZE, CHUNK_SIZE)).toBe(true);
    // No deadline passed (1 s here): the hedge answered first.
    expect(g.log.filter((m) => m.includes('from peer F failed'))).toEqual([]);
    const c = g.agent.counters.snapshot();
    expect(c.hedgedRequests).toBe(1);
    expect(c.bytes.root - rootBytes).toBe(CHUNK_SIZE);
    // The report runs beside the read: wait for it (bounded).
    for (let i = 0; i < 100 && parentOf(g.agent) === 'F'; i++) await sleep(20);
    expect(parentOf(g.agent)).not.toBe('F');
    expect(rootLog.some((m) => m.startsWith('G reports F slow'))).toBe(true);
    expect(g.agent.counters.snapshot().reparents).toBe(1);
  });

  it('checks 2 MiB chunks by the 1 MiB digests they span (no fallback to CRCs)', async () => {
    // A flipped byte inside such a span: chunk-verify.test.ts.
    const b = blob(true);
    const j = await startAgent('J', 2 * CHUNK_SIZE);
    expect(await read(j.agent, b, 0, SIZE)).toBe(true);
    expect(j.log.filter((m) => /digest list|CRC/.test(m))).toEqual([]);
    const c = j.agent.counters.snapshot();
    expect(c.bytes.root).toBe(SIZE);
    expect(c.corruptChunks).toBe(0);
  });

  it('does not check by a digest list of larger chunks, and says so', async () => {
    const b = blob(true);
    const h = await startAgent('H', 256 << 10);
    expect(await read(h.agent, b, 0, SIZE)).toBe(true);
    expect(
      h.log.some((m) =>
        m.includes(
          "the image's chunk digest list has 1048576-byte chunks, larger than the 262144-byte chunks this agent moves",
        ),
      ),
    ).toBe(true);
    expect(h.agent.counters.snapshot().bytes.root).toBe(SIZE);
  });

  it("a root told the agents' chunk size fetches from the registry only the chunks they ask for", async () => {
    // A list of 256 KiB chunks: checking needs nothing else from the blob (the ZFile CRC fallback would).
    const b = blob(true, 256 << 10);
    const small = await startTestRoot(join(dir, 'root-small'), { chunkSize: 256 << 10 });
    try {
      const others = new TestAgents(join(dir, 'small'), () => small.url);
      try {
        const k = await others.start('K', { chunkSize: 256 << 10 });
        expect(await read(k, b, 3 * (256 << 10), 256 << 10)).toBe(true);
        // One 256 KiB chunk, not the 1 MiB a root refilling in default chunks would fetch.
        expect(small.counters.snapshot().bytes.registry).toBe(256 << 10);
      } finally {
        await others.close();
      }
    } finally {
      await small.close();
    }
  });

  it('refuses a chunk size other than its cache refill size', async () => {
    const cache = await BlockCache.open(join(dir, 'bad'), { refillSize: CHUNK_SIZE });
    caches.push(cache);
    const client = new RegistryClient({ insecure: true });
    clients.push(client);
    await expect(
      P2PAgent.start({
        root: root.url,
        listen: '127.0.0.1:0',
        client,
        credentials: async () => undefined,
        cache,
        chunkSize: 64 << 10,
      }),
    ).rejects.toThrow(
      /p2p chunk size 65536 must be a power of two ≥ 4096 and equal the cache's refill size \(1048576\)/,
    );
  });
});
