// `dadi p2p root`: the per-datacenter root. It keeps the tracker (src/p2p/tracker.ts) behind an
// HTTP JSON API (protocol.ts), checks every joining host's registry credentials against the
// registry (access.ts) before placing it or signing it a grant, and serves chunks from a
// persistent block cache filled from the registry — the only P2P component that reads blobs from
// the registry. Not the agent (agent.ts).

import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { BlockCache, CachedBlob } from '../cache/index.js';
import { DadiError } from '../errors.js';
import { type CacheClaim, cacheHeldNote, claimHostCache } from '../image/host-cache.js';
import { CHUNK_SIZE } from '../p2p/chunks.js';
import { P2PCounters } from '../p2p/counters.js';
import { GrantChecker, newGrantKeys, publicKeyOf, signGrant } from '../p2p/grant.js';
import { type Random, seededRandom } from '../p2p/random.js';
import { Tracker } from '../p2p/tracker.js';
import { RegistryClient, RemoteBlob } from '../registry/index.js';
import { BufferPool } from '../util/buffer-pool.js';
import { AccessCheck } from './access.js';
import { parseListen, readJson, sendError, sendJson, serveRequests } from './http.js';
import {
  type BlobRef,
  HEADERS,
  type JoinAnswer,
  MAX_JSON_BYTES,
  PATHS,
  parseBlobRef,
  parseJoin,
  parseRange,
  parseReport,
} from './protocol.js';

export interface RootOptions {
  /** `host:port` to listen on (port 0: any). */
  listen: string;
  /** Persistent chunk cache (claimed: one owner per directory). */
  cacheDir: string;
  cacheSize?: number;
  /**
   * The agents' chunk size (p2pConfig.chunkSize; default CHUNK_SIZE): the unit the root's cache
   * fetches from the registry, so a smaller chunk costs the registry no more than it carries.
   */
  chunkSize?: number;
  /** Children per host per blob (default 4) and under the root (default = fanout). */
  fanout?: number;
  rootFanout?: number;
  /** A host not heard from for this long leaves its trees (default 60 s). */
  idleMs?: number;
  /** Grant lifetime (default 10 min) and access answer cache (default 60 s). */
  grantMs?: number;
  accessTtlMs?: number;
  /** Plain HTTP for every registry. */
  insecure?: boolean;
  random?: Random;
  log?: (message: string) => void;
}

/** Blobs whose shared grant is remembered (a forgotten one is simply signed again). */
const MAX_SHARED_GRANTS = 10_000;

/** Sent at most per chunk request, in chunks (a child asks one chunk at a time). */
const MAX_RANGE_CHUNKS = 16;

export class P2PRoot {
  readonly counters = new P2PCounters();
  readonly tracker: Tracker;
  private readonly access: AccessCheck;
  private readonly blobs = new Map<string, Promise<CachedBlob>>();
  private readonly sizes = new Map<string, number>();
  private expireTimer: NodeJS.Timeout | undefined;
  /** Parsed once: parsing the PEM on every grant or check cost ~10× the signature itself. */
  private readonly privateKey: KeyObject;
  private readonly grants: GrantChecker;
  /** The grant each blob's joining hosts get (grantFor), oldest first. */
  private readonly sharedGrants = new Map<string, { grant: string; expiresAt: number }>();

  private constructor(
    private readonly opts: RootOptions,
    private readonly server: Server,
    private readonly claim: CacheClaim,
    private readonly cache: BlockCache,
    private readonly client: RegistryClient,
    private readonly keys: { privateKeyPem: string; publicKeyPem: string },
    /** Chunk answers' and cache fills' buffers, reused (fresh ones page-faulted and fed the GC). */
    private readonly buffers: BufferPool,
  ) {
    this.tracker = new Tracker({
      fanout: opts.fanout ?? 4,
      rootFanout: opts.rootFanout,
      idleMs: opts.idleMs,
      random: opts.random ?? seededRandom(Date.now() ^ process.pid),
    });
    this.access = new AccessCheck({ ttlMs: opts.accessTtlMs, insecure: opts.insecure });
    this.privateKey = createPrivateKey(keys.privateKeyPem);
    this.grants = new GrantChecker(createPublicKey(keys.publicKeyPem));
  }

  /** Claim the cache, load (or make) the signing key, listen. */
  static async start(opts: RootOptions): Promise<P2PRoot> {
    const { host, port } = parseListen(opts.listen);
    // One chunk each (a child asks one chunk at a time, the cache fills one at a time); 32 idle at
    // most (32 MiB at 1 MiB chunks).
    const buffers = new BufferPool(opts.chunkSize ?? CHUNK_SIZE, 32);
    // No readahead: agents ask for exactly the chunks their hosts read, and a chunk fetched ahead
    // of every ask is registry egress nobody may need (the root's fetches are the tree's egress).
    const claimed = await claimHostCache(opts.cacheDir, 'dadi p2p root', {
      refillSize: opts.chunkSize ?? CHUNK_SIZE,
      capacity: opts.cacheSize,
      readahead: 0,
      buffers,
    });
    if ('heldBy' in claimed) throw new DadiError('EEXIST', cacheHeldNote(opts.cacheDir, claimed.heldBy));
    let client: RegistryClient | undefined;
    try {
      const cache = await claimed.open();
      const keys = await loadKeys(opts.cacheDir);
      client = new RegistryClient({ insecure: opts.insecure ? true : undefined });
      const server = createServer();
      const root = new P2PRoot(opts, server, claimed, cache, client, keys, buffers);
      serveRequests(
        server,
        (req, res) => root.handle(req, res),
        (m) => root.log(m),
      );
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      const every = Math.max(1000, Math.floor((opts.idleMs ?? 60_000) / 4));
      root.expireTimer = setInterval(() => root.tracker.expire(Date.now()), every);
      root.expireTimer.unref();
      return root;
    } catch (e) {
      await client?.close();
      await claimed.close();
      throw e;
    }
  }

  /** `http://host:port` as bound. */
  get url(): string {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${a.port}`;
  }

  async close(): Promise<void> {
    clearInterval(this.expireTimer);
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
    try {
      for (const b of this.blobs.values()) await (await b.catch(() => undefined))?.close();
      await this.client.close();
    } finally {
      await this.claim.close();
    }
  }

  private log(m: string): void {
    (this.opts.log ?? ((x) => process.stderr.write(`dadi p2p root: ${x}\n`)))(m);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://root');
      if (req.method === 'POST' && url.pathname === PATHS.join) return await this.join(req, res);
      if (req.method === 'POST' && url.pathname === PATHS.report) return await this.report(req, res);
      if (req.method === 'GET' && url.pathname === PATHS.blob) return await this.serveBlob(req, res, url);
      if (req.method === 'GET' && url.pathname === PATHS.status) return sendJson(res, 200, this.status());
      sendJson(res, 404, { error: `no such endpoint: ${req.method} ${url.pathname}` });
    } catch (e) {
      if (!(e instanceof DadiError)) this.log(`${req.method} ${req.url}: ${(e as Error).message}`);
      sendError(res, e);
    }
  }

  private async join(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const j = parseJoin(await readJson(req, MAX_JSON_BYTES));
    const answer = await this.access.check(j.blob, req.headers.authorization);
    if (!answer.ok) {
      this.log(`denied ${j.host.id} ${j.blob.registry}/${j.blob.repository}@${j.blob.digest}: ${answer.why}`);
      return sendJson(res, answer.status, { error: answer.why });
    }
    this.sizes.set(j.blob.digest, answer.size);
    const now = Date.now();
    const placement = this.tracker.join(j.blob.digest, j.host, now);
    const { grant, expiresAt } = this.grantFor(j.blob.digest, now);
    const out: JoinAnswer = {
      path: placement.path,
      grant,
      expiresAt,
      size: answer.size,
      publicKey: this.keys.publicKeyPem,
    };
    sendJson(res, 200, out);
  }

  /**
   * The grant for a blob: one for every host that joins it, signed again once it has lived a
   * tenth of its life (10 s at most), so each still gets nearly the whole lifetime. A grant never
   * named who may present it (any holder may), so sharing it gives no host more than its own
   * would; it saves an Ed25519 signature per join (1,000 hosts joining at once: one or two).
   */
  private grantFor(digest: string, now: number): { grant: string; expiresAt: number } {
    const life = this.opts.grantMs ?? 600_000;
    const g = this.sharedGrants.get(digest);
    if (g && g.expiresAt - now >= life - Math.min(10_000, life / 10)) return g;
    const expiresAt = now + life;
    const fresh = { grant: signGrant(this.privateKey, { digest, expiresAt }), expiresAt };
    this.sharedGrants.delete(digest);
    this.sharedGrants.set(digest, fresh);
    if (this.sharedGrants.size > MAX_SHARED_GRANTS) this.sharedGrants.delete(this.sharedGrants.keys().next().value!);
    return fresh;
  }

  private async report(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const r = parseReport(await readJson(req, MAX_JSON_BYTES));
    this.requireGrant(req, r.digest);
    this.log(`${r.host} reports ${r.peer} ${r.problem} for ${r.digest}`);
    const p = this.tracker.report(r.digest, r.host, r.peer, r.problem, Date.now());
    sendJson(res, 200, { path: p.path });
  }

  private requireGrant(req: IncomingMessage, digest: string): void {
    const why = this.grants.check(header(req, HEADERS.grant), digest, Date.now());
    if (why) throw new DadiError('EAUTH', `${digest}: ${why}`);
  }

  private async serveBlob(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const ref = parseBlobRef(Object.fromEntries(url.searchParams));
    this.requireGrant(req, ref.digest);
    const blob = await this.openBlob(ref);
    const range = parseRange(req.headers.range) ?? { offset: 0, length: blob.size };
    if (range.offset >= blob.size && blob.size > 0) throw new DadiError('ERANGE', `${ref.digest}: range past the end`);
    const length = Math.min(range.length, blob.size - range.offset);
    const max = MAX_RANGE_CHUNKS * (this.opts.chunkSize ?? CHUNK_SIZE);
    if (length > max) throw new DadiError('ERANGE', `${ref.digest}: ranges above ${max} bytes are refused`);
    const buf = this.buffers.take(length);
    // The cache's read settles everything before it fails: nothing writes into buf after that.
    const n = await blob.read(buf, range.offset).catch((e: unknown) => {
      this.buffers.give(buf);
      throw e;
    });
    // Back to the pool once the answer was sent or dropped: nothing holds it after 'close'.
    if (res.destroyed) this.buffers.give(buf);
    else res.once('close', () => this.buffers.give(buf));
    this.counters.served(n);
    res.writeHead(206, {
      'content-length': n,
      'content-range': `bytes ${range.offset}-${range.offset + n - 1}/${blob.size}`,
      [HEADERS.source]: 'root',
    });
    res.end(buf.subarray(0, n));
  }

  /** The blob through the root's cache (its origin reads counted as registry bytes). */
  private openBlob(ref: BlobRef): Promise<CachedBlob> {
    let p = this.blobs.get(ref.digest);
    if (!p) {
      p = (async () => {
        const remote = await RemoteBlob.open(
          this.client,
          { registry: ref.registry, repository: ref.repository },
          ref.digest,
          { size: this.sizes.get(ref.digest) },
        );
        const counted = {
          name: remote.name,
          size: remote.size,
          read: async (buf: Uint8Array, offset: number) => {
            try {
              const n = await remote.read(buf, offset);
              this.counters.fetched('registry', n);
              return n;
            } catch (e) {
              this.counters.failed('registry');
              throw e;
            }
          },
          close: () => remote.close(),
        };
        return this.cache.open(ref.digest, counted);
      })();
      p.catch(() => this.blobs.delete(ref.digest));
      this.blobs.set(ref.digest, p);
    }
    return p;
  }

  status(): unknown {
    return {
      blobs: this.tracker.blobs().map((d) => ({ digest: d, hosts: this.tracker.size(d) })),
      accessChecks: this.access.checks,
      counters: this.counters.snapshot(),
    };
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The root's signing key, kept beside its cache so grants outlive a restart. */
async function loadKeys(cacheDir: string): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const path = join(cacheDir, 'p2p-root-key.pem');
  try {
    const privateKeyPem = await readFile(path, 'utf8');
    return { privateKeyPem, publicKeyPem: publicKeyOf(privateKeyPem) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new DadiError('EIO', `${path}: cannot read the root's signing key: ${(e as Error).message}`);
    }
  }
  const keys = newGrantKeys();
  await writeFile(path, keys.privateKeyPem, { mode: 0o600, flag: 'wx' });
  return keys;
}
