// The pieces every remote read needs on a host: a registry client and the shared block cache,
// built from a few options. The cache is used only by its owner (host-cache.ts): a process that
// finds it owned by another (the daemon) reads past it and says so once.
// Used by the CLI and by the daemon.

import type { BlockCache } from '../cache/index.js';
import { type Platform, parsePlatform } from '../oci/index.js';
import { defaultCredentials, hostsDirLookup, RegistryClient } from '../registry/index.js';
import type { TransportOptions } from '../registry/transport.js';
import { type AgentOptions, P2PAgent } from '../swarm/agent.js';
import { hostCache } from './cache-dir.js';
import { type CacheClaim, cacheHeldNote, claimHostCache } from './host-cache.js';

export { defaultCacheDir } from './cache-dir.js';

export interface RemoteContextOptions {
  /** Plain HTTP for every registry (loopback registries always use HTTP). */
  insecure?: boolean;
  /** Block cache folder (default: the config file's, else `defaultCacheDir()`; see hostCache). */
  cacheDir?: string;
  /** false: no cache, every read goes to the registry. */
  cache?: boolean;
  /** Cache capacity in bytes. */
  cacheSize?: number;
  /** `os/arch[/variant]` to pick from multi-platform images. */
  platform?: string;
  /** Blob reads through this overlaybd-style P2P proxy (default: $DADI_P2P_PROXY; see registry/p2p-proxy.ts). */
  p2pProxy?: string;
  /** Who claims the cache, for the messages of others (default `dadi <command>`). */
  role?: string;
  /** A claim already taken (the daemon claims its cache when it starts); closed with the context. */
  claim?: CacheClaim;
  /** Where the note about a cache owned by another process goes (default stderr). */
  log?: (message: string) => void;
  /** Told of each blob range fetched from the registry, the P2P root or a peer (the daemon's fetch metrics). */
  onFetch?: (source: 'registry' | 'root' | 'peer', bytes: number, seconds: number) => void;
  /** Read registry blobs through the P2P tree of this root (needs the cache; see swarm/agent.ts). */
  p2p?: P2PSettings;
  /** The registry client's own messages (per-request trace lines included; see TransportOptions.log). */
  registryLog?: TransportOptions['log'];
  /** containerd's registry hosts folder (registry/hosts.ts): mirrors, TLS and plain HTTP per registry. */
  hostsDir?: string;
}

/** The agent's settings (daemon flags or the config file's p2pConfig). */
export type P2PSettings = Pick<
  AgentOptions,
  'root' | 'listen' | 'advertise' | 'hostId' | 'upload' | 'log' | 'chunkSize'
>;

export interface RemoteContext {
  client: RegistryClient;
  cache?: BlockCache;
  /** The P2P agent registry blobs are read through (under the cache), when configured. */
  p2p?: P2PAgent;
  platform?: Platform;
  close(): Promise<void>;
}

export async function openRemoteContext(o: RemoteContextOptions = {}): Promise<RemoteContext> {
  const platform = o.platform ? parsePlatform(o.platform) : undefined;
  const claim = o.claim ?? (o.cache === false ? undefined : await claimCache(o));
  const client = new RegistryClient({
    insecure: o.insecure ? true : undefined,
    platform,
    onRangeRead: o.onFetch && ((bytes, seconds) => o.onFetch?.('registry', bytes, seconds)),
    p2pProxy: o.p2pProxy,
    log: o.registryLog,
    hosts: o.hostsDir ? hostsDirLookup(o.hostsDir) : undefined,
  });
  let cache: BlockCache | undefined;
  let p2p: P2PAgent | undefined;
  try {
    cache = await claim?.open();
    if (o.p2p && cache) {
      p2p = await P2PAgent.start({ ...o.p2p, client, credentials: defaultCredentials(), cache, onFetch: o.onFetch });
    } else if (o.p2p) {
      (o.log ?? ((m) => process.stderr.write(`dadi: ${m}\n`)))(
        'no block cache: P2P reads are off, reading the registry',
      );
    }
  } catch (e) {
    await claim?.close();
    await client.close();
    throw e;
  }
  return {
    client,
    cache,
    p2p,
    platform,
    async close() {
      try {
        await p2p?.close();
        await claim?.close();
      } finally {
        await client.close();
      }
    },
  };
}

async function claimCache(o: RemoteContextOptions): Promise<CacheClaim | undefined> {
  const host = o.cacheDir ? undefined : await hostCache();
  const dir = o.cacheDir ?? host!.dir;
  const role = o.role ?? `dadi ${process.argv[2] ?? ''}`.trim();
  const r = await claimHostCache(dir, role, { capacity: o.cacheSize ?? host?.capacity });
  if (!('heldBy' in r)) return r;
  (o.log ?? ((m) => process.stderr.write(`dadi: ${m}\n`)))(`${cacheHeldNote(dir, r.heldBy)}; reading without it`);
  return undefined;
}
