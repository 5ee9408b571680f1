// The P2P agent keeps serving when its clients and its parent misbehave (issue #13 follow-up: agent
// processes died of an unhandled rejection under load, taking the daemon down). A root, a parent
// agent A and a child agent B, in process on loopback, over an in-memory registry; clients that
// reset mid-upload, send garbage, or go away before the answer; a parent that accepts and never
// answers, and one that resets. Every read still returns the blob's bytes, and nothing escapes unhandled.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../oci/digest.js';
import { CHUNK_DIGESTS_MEDIA_TYPE, computeChunkDigests, encodeChunkDigests } from '../p2p/chunk-digests.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { MemoryRegistry, serveRoute } from '../registry/testing.js';
import type { P2PAgent } from './agent.js';
import { HEADERS, PATHS } from './protocol.js';
import type { P2PRoot } from './root.js';
import { startTestRoot, TestAgents } from './testing.js';

const SIZE = 4 * CHUNK_SIZE + 4321;
const TIMEOUT_MS = 400;

describe('P2P agent under misbehaving clients and parents', () => {
  let dir: string;
  let registry: { host: string; close: () => Promise<void> };
  let root: P2PRoot;
  let agents: TestAgents;
  let stall: NetServer | undefined;
  const stalled: Socket[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  const bytes = randomBytes(SIZE);
  let digest: Digest;
  let chunkDigests: { mediaType: string; digest: Digest; size: number };

  const startAgent = (id: string) => agents.start(id, { chunkTimeoutMs: TIMEOUT_MS });

  /** sha256 of what `a` reads at [offset, offset+length), to compare with the blob's (toEqual on MiBs is slow). */
  const read = async (a: P2PAgent, offset: number, length: number): Promise<string> => {
    const f = await a.open({ registry: registry.host, repository: 'r', digest, size: SIZE, chunkDigests }, SIZE);
    const buf = Buffer.alloc(length);
    expect(await f.read(buf, offset)).toBe(length);
    await f.close();
    return sha(buf);
  };
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const want = (offset: number, end = SIZE) => sha(bytes.subarray(offset, end));

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    dir = await mkdtemp(join(tmpdir(), 'dadi-agent-test-'));
    agents = new TestAgents(dir, () => root.url);
    const reg = new MemoryRegistry();
    digest = reg.putBlob('r', bytes);
    const list = encodeChunkDigests(computeChunkDigests(bytes, digest));
    chunkDigests = { mediaType: CHUNK_DIGESTS_MEDIA_TYPE, digest: reg.putBlob('r', list), size: list.length };
    registry = await serveRoute(reg.route);
    // One host under the root: the second host joins under the first.
    root = await startTestRoot(join(dir, 'root'));
  });

  afterAll(async () => {
    for (const s of stalled) s.destroy();
    await new Promise<void>((r) => (stall ? stall.close(() => r()) : r()));
    await agents?.close();
    await root?.close();
    await registry?.close();
    await rm(dir, { recursive: true, force: true });
    process.off('unhandledRejection', onUnhandled);
  });

  it('keeps serving right bytes through bad clients, a parent that stalls and a parent that resets', async () => {
    const a = await startAgent('A');
    expect(await read(a, 0, SIZE)).toBe(want(0));
    // Two children under A (the root takes one host; A takes two).
    const b = await startAgent('B');
    const c = await startAgent('C');
    expect(await read(b, 0, CHUNK_SIZE)).toBe(want(0, CHUNK_SIZE));
    expect(await read(c, 0, CHUNK_SIZE)).toBe(want(0, CHUNK_SIZE));
    const parentOf = (x: P2PAgent) => (x.status() as { blobs: { parent: string | null }[] }).blobs[0]?.parent;
    expect([parentOf(b), parentOf(c)]).toEqual(['A', 'A']);

    const port = Number(new URL(b.address).port);
    /** Send `text`, do `then` to the socket, and return what the agent answered meanwhile. */
    const raw = async (text: string, then: (s: Socket) => void): Promise<string> => {
      const s = connect(port, '127.0.0.1');
      let answer = '';
      s.on('error', () => {});
      s.on('data', (d) => {
        answer += d.toString('latin1');
      });
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write(text);
      await sleep(50);
      then(s);
      await sleep(50);
      return answer;
    };
    const query = `registry=${encodeURIComponent(registry.host)}&repository=r&digest=${digest}`;
    const push = (chunk: number, body: string) =>
      `PUT ${PATHS.push}?${query}&chunk=${chunk} HTTP/1.1\r\nhost: x\r\n${HEADERS.host}: A\r\ncontent-length: ${CHUNK_SIZE}\r\n\r\n${body}`;
    // A push from B's parent that resets half way through the chunk, and one that ends early.
    await raw(push(2, 'x'.repeat(1000)), (s) => s.resetAndDestroy());
    await raw(push(3, 'abc'), (s) => s.end());
    // Not HTTP at all, and a request cut inside its headers.
    expect(await raw('\x00\x01garbage\r\n\r\n', () => {})).toMatch(/^HTTP\/1.1 400 /);
    await raw(`GET ${PATHS.status} HTTP/1.1\r\nhost: x\r\nx-half`, (s) => s.resetAndDestroy());
    // A proxy-form client that asks for two chunks and resets before reading the answer.
    await raw(
      `GET /http://${registry.host}/v2/r/blobs/${digest} HTTP/1.1\r\nhost: x\r\nrange: bytes=0-${2 * CHUNK_SIZE - 1}\r\n\r\n`,
      (s) => s.resetAndDestroy(),
    );

    // A goes; in its place a parent that accepts and then never answers (first connection) or
    // resets (every later one). B meets the staller, C the resetter: each reports A and reads on.
    const aPort = Number(new URL(a.address).port);
    await a.close();
    // Let B's and C's HTTP clients see A's connections close: a request sent on a pooled socket
    // that is closing fails without ever meeting the stand-in below.
    await sleep(200);
    let connections = 0;
    stall = createNetServer((s) => {
      s.on('error', () => {});
      stalled.push(s);
      if (connections++ > 0) s.once('data', () => s.resetAndDestroy());
    });
    await new Promise<void>((r) => stall!.listen(aPort, '127.0.0.1', () => r()));
    expect(await read(b, CHUNK_SIZE, CHUNK_SIZE)).toBe(want(CHUNK_SIZE, 2 * CHUNK_SIZE));
    expect(await read(c, CHUNK_SIZE, CHUNK_SIZE)).toBe(want(CHUNK_SIZE, 2 * CHUNK_SIZE));
    expect(connections).toBeGreaterThanOrEqual(2);
    expect(parentOf(b)).not.toBe('A');
    expect(parentOf(c)).not.toBe('A');

    // Still serving: status answers, and the whole blob reads right on both.
    const st = await request(`${b.address}${PATHS.status}`);
    expect(st.statusCode).toBe(200);
    await st.body.dump();
    expect(await read(b, 0, SIZE)).toBe(want(0));
    expect(await read(c, 0, SIZE)).toBe(want(0));
    expect(b.counters.snapshot().corruptChunks).toBe(0);
    expect(unhandled).toEqual([]);
  }, 60_000);
});
