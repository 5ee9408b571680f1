// A root that is slow is not a root that is down: the agent reads the registry only when the root
// is. In process on loopback: a real root behind a TCP stand-in that can hold chunk requests
// unanswered (a root starved of CPU on a busy machine) or refuse connections (a root that is gone).
// - one chunk request held past the deadline: asked once more, no registry read;
// - every chunk request held: after two deadlines the chunk comes from the registry (counted);
// - the root gone: the registry at once, counted, no second wait.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../oci/digest.js';
import { CHUNK_DIGESTS_MEDIA_TYPE, computeChunkDigests, encodeChunkDigests } from '../p2p/chunk-digests.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { MemoryRegistry, serveRoute } from '../registry/testing.js';
import type { P2PAgent } from './agent.js';
import { PATHS } from './protocol.js';
import type { P2PRoot } from './root.js';
import { startTestRoot, TestAgents } from './testing.js';

const SIZE = 3 * CHUNK_SIZE + 99;
const TIMEOUT_MS = 1500;

/** A TCP stand-in for the root: passes connections through, holds the next `hold` chunk requests unanswered. */
class RootStandIn {
  hold = 0;
  held = 0;
  private constructor(
    private readonly server: Server,
    private readonly sockets: Socket[],
    readonly url: string,
  ) {}

  static async start(target: () => number): Promise<RootStandIn> {
    const sockets: Socket[] = [];
    let self: RootStandIn | undefined;
    const server = createServer((client) => {
      sockets.push(client);
      const up = connect(target(), '127.0.0.1');
      sockets.push(up);
      let holding = false;
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      up.on('close', () => client.destroy());
      client.on('data', (d) => {
        if (!holding && self!.hold > 0 && d.toString('latin1').startsWith(`GET ${PATHS.blob}`)) {
          self!.hold--;
          self!.held++;
          holding = true;
        }
        if (!holding) up.write(d);
      });
      up.on('data', (d) => {
        if (!holding) client.write(d);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    self = new RootStandIn(server, sockets, `http://127.0.0.1:${(server.address() as { port: number }).port}`);
    return self;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('P2P agent: a slow root is not a down root', () => {
  let dir: string;
  let registry: { host: string; close: () => Promise<void> };
  let root: P2PRoot;
  let standIn: RootStandIn;
  let agents: TestAgents;
  const bytes = randomBytes(SIZE);
  let digest: Digest;
  let chunkDigests: { mediaType: string; digest: Digest; size: number };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dadi-agent-root-'));
    const reg = new MemoryRegistry();
    digest = reg.putBlob('r', bytes);
    const list = encodeChunkDigests(computeChunkDigests(bytes, digest));
    chunkDigests = { mediaType: CHUNK_DIGESTS_MEDIA_TYPE, digest: reg.putBlob('r', list), size: list.length };
    registry = await serveRoute(reg.route);
    root = await startTestRoot(join(dir, 'root'), { rootFanout: 8, fanout: 8 });
    standIn = await RootStandIn.start(() => Number(new URL(root.url).port));
    agents = new TestAgents(dir, () => standIn.url);
  });

  afterAll(async () => {
    await agents?.close();
    await standIn?.close();
    await root?.close();
    await registry?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  /** What `a` reads of chunk `i` equals the blob's. */
  const readChunk = async (a: P2PAgent, i: number): Promise<void> => {
    const f = await a.open({ registry: registry.host, repository: 'r', digest, size: SIZE, chunkDigests }, SIZE);
    const buf = Buffer.alloc(CHUNK_SIZE);
    expect(await f.read(buf, i * CHUNK_SIZE)).toBe(CHUNK_SIZE);
    await f.close();
    expect(sha(buf)).toBe(sha(bytes.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)));
  };

  it('asks a root that missed one deadline once more instead of reading the registry', async () => {
    const lines: string[] = [];
    const a = await agents.start('A', { chunkTimeoutMs: TIMEOUT_MS, log: (m) => lines.push(m) });
    standIn.hold = 1;
    await readChunk(a, 0);
    expect(standIn.held).toBe(1);
    const c = a.counters.snapshot();
    expect(c.registryFallbacks).toBe(0);
    expect(c.bytes.registry).toBe(0);
    expect(c.bytes.root).toBe(CHUNK_SIZE);
    expect(c.failures.root).toBe(1);
    expect(lines.some((l) => /slow .*asking it once more/.test(l))).toBe(true);
  }, 20_000);

  it('reads the registry once the root missed two deadlines for the same chunk', async () => {
    const a = await agents.start('B', { chunkTimeoutMs: TIMEOUT_MS });
    standIn.held = 0;
    standIn.hold = 2;
    await readChunk(a, 1);
    expect(standIn.held).toBe(2);
    const c = a.counters.snapshot();
    expect(c.registryFallbacks).toBe(1);
    expect(c.bytes.registry).toBe(CHUNK_SIZE);
    expect(c.failures.root).toBe(2);
  }, 20_000);

  it('reads the registry at once when the root is gone', async () => {
    const a = await agents.start('C', { chunkTimeoutMs: 5000 });
    standIn.hold = 0;
    await readChunk(a, 0);
    await standIn.close();
    const started = performance.now();
    await readChunk(a, 2);
    expect(performance.now() - started).toBeLessThan(4000);
    const c = a.counters.snapshot();
    expect(c.registryFallbacks).toBe(1);
    expect(c.bytes.registry).toBe(CHUNK_SIZE);
  }, 20_000);
});
