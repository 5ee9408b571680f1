// For tests: P2P agents in process on loopback, each with a block cache and a registry client of
// its own under `dir`, all closed by close(), and a root for them. Not for production use.
//
//   const root = await startTestRoot(join(dir, 'root'));
//   const agents = new TestAgents(dir, () => root.url);
//   const a = await agents.start('A', { log: (m) => lines.push(m) });
//   … await agents.close();

import { join } from 'node:path';
import { BlockCache } from '../cache/index.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { RegistryClient } from '../registry/index.js';
import { type AgentOptions, P2PAgent } from './agent.js';
import { P2PRoot, type RootOptions } from './root.js';

/**
 * A root on loopback with its cache in `cacheDir`, reading a plain-HTTP registry, logging nowhere
 * unless told: fan-out 2 and one child under the root itself unless `opts` say otherwise.
 */
export function startTestRoot(cacheDir: string, opts: Partial<RootOptions> = {}): Promise<P2PRoot> {
  return P2PRoot.start({
    listen: '127.0.0.1:0',
    cacheDir,
    insecure: true,
    fanout: 2,
    rootFanout: 1,
    log: () => {},
    ...opts,
  });
}

export class TestAgents {
  private readonly agents: P2PAgent[] = [];
  private readonly clients: RegistryClient[] = [];
  private readonly caches: BlockCache[] = [];

  constructor(
    private readonly dir: string,
    private readonly rootUrl: () => string,
  ) {}

  /** Agent `id`, its cache refilling in its chunk size, without registry credentials, logging nowhere unless told. */
  async start(
    id: string,
    opts: Partial<Pick<AgentOptions, 'chunkSize' | 'chunkTimeoutMs' | 'log'>> & { refillSize?: number } = {},
  ): Promise<P2PAgent> {
    const chunkSize = opts.chunkSize ?? CHUNK_SIZE;
    const cache = await BlockCache.open(join(this.dir, id), { refillSize: opts.refillSize ?? chunkSize });
    const client = new RegistryClient({ insecure: true });
    this.caches.push(cache);
    this.clients.push(client);
    const agent = await P2PAgent.start({
      root: this.rootUrl(),
      listen: '127.0.0.1:0',
      hostId: id,
      client,
      credentials: async () => undefined,
      cache,
      chunkSize,
      chunkTimeoutMs: opts.chunkTimeoutMs,
      log: opts.log ?? (() => {}),
    });
    this.agents.push(agent);
    return agent;
  }

  async close(): Promise<void> {
    for (const a of this.agents) await a.close().catch(() => {});
    for (const c of this.clients) await c.close();
    for (const c of this.caches) await c.close();
  }
}
