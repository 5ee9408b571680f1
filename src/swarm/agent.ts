// The P2P agent inside `dadi daemon`. For a registry blob it joins the blob's tree through the
// root (forwarding this host's registry credentials to the root only), and becomes the source
// under the host's block cache: each cache miss is one chunk (p2pConfig.chunkSize, 1 MiB by
// default; the daemon's cache refills in chunks), fetched from the parent, walking up on failure
// to the root, and from the registry only when the root is unusable (logged and counted). Every
// chunk from a peer or the root is verified (p2p/chunk-verify.ts) before use; a bad one blames the
// peer and is fetched elsewhere, a slow one (p2p/deadline.ts) is reported and left (a slow root
// is asked once more before the registry: patientRoot); a request to
// a peer still silent after the hedge delay is also sent to the next hop up (fetchHedged). The agent
// also serves its children (Range GETs, grant-checked), pushes them each chunk it gets (pull-push,
// p2p/push.ts), and serves overlaybd's P2P proxy URL form. Decisions are src/p2p's; this is I/O.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import type { BlockFile } from '../blockfile/blockfile.js';
import { checkRead } from '../blockfile/range.js';
import type { BlockCache, CachedBlob } from '../cache/index.js';
import { DadiError } from '../errors.js';
import { zfileBlockMap } from '../image/chunk-integrity.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { decodeChunkDigests } from '../p2p/chunk-digests.js';
import { ChunkVerifier } from '../p2p/chunk-verify.js';
import { CHUNK_SIZE, chunkRange, chunksCovering } from '../p2p/chunks.js';
import { type ChunkSource, P2PCounters } from '../p2p/counters.js';
import { TransferDeadline } from '../p2p/deadline.js';
import { checkGrant } from '../p2p/grant.js';
import { HedgeGate, WAIT_HEARTBEAT_MS } from '../p2p/hedge.js';
import { type PushOrder, PushPlanner } from '../p2p/push.js';
import { ChunkFetch, type FailureVerdict, type Hop, routeOf } from '../p2p/schedule.js';
import type { HostRef, PeerProblem } from '../p2p/tracker.js';
import { basicAuthorization, type CredentialProvider, type RegistryClient } from '../registry/index.js';
import { parseListen, readRequestBody, sendError, sendJson, serveRequests } from './http.js';
import { getRange, PeerError, postJson, pushChunk } from './peer-client.js';
import {
  type BlobRef,
  blobQuery,
  HEADERS,
  type JoinAnswer,
  PATHS,
  parseBlobRef,
  parseProxyPath,
  parseRange,
} from './protocol.js';

export interface AgentOptions {
  /** The root's base URL. */
  root: string;
  /** `host:port` this agent serves children and proxy clients on. */
  listen: string;
  /** The URL children reach it at (default `http://<listen>`, with the bound port). */
  advertise?: string;
  /** This host's id in the trees (default `<hostname>:<port>`). */
  hostId?: string;
  /** Relative upload capacity announced to the root. */
  upload?: number;
  /** For the registry fallback and the chunk digest lists. */
  client: RegistryClient;
  /** This host's registry credentials, forwarded to the root (and nowhere else). */
  credentials: CredentialProvider;
  /** The host's block cache; refilling in `chunkSize` units. */
  cache: BlockCache;
  /**
   * Bytes per chunk moved between hosts (p2pConfig.chunkSize; default CHUNK_SIZE): a power of two,
   * equal to the cache's refill size. Chunks are verified against the image's digest list when
   * its chunks are the same size or smaller (else by ZFile CRCs, with a warning).
   */
  chunkSize?: number;
  /**
   * Longest a chunk request to a peer or the root may take (default 10 s). The deadline of a
   * request to a peer follows the measured transfer rate (p2p/deadline.ts), from 1 s up to this.
   */
  chunkTimeoutMs?: number;
  /** Pushes in flight per child (default 2). */
  pushWindow?: number;
  log?: (message: string) => void;
  /** Told of each verified chunk from the root or a peer: its bytes and seconds (the daemon's fetch metrics). */
  onFetch?: (source: 'root' | 'peer', bytes: number, seconds: number) => void;
}

/** A registry blob as the agent reads it. */
export interface AgentBlobRef {
  registry: string;
  repository: string;
  digest: string;
  size?: number;
  /** The layer's chunk digest list, when the image publishes one (descriptor from its annotations). */
  chunkDigests?: Descriptor;
}

interface BlobState {
  ref: BlobRef;
  name: string;
  size: number;
  chunkDigests?: Descriptor;
  path: HostRef[];
  grant?: string;
  joined?: Promise<void>;
  verifier?: Promise<ChunkVerifier>;
  /** Verified chunks pushed by the parent, until the cache has them. */
  inbox: Map<number, Buffer>;
  inflight: Map<number, Promise<Buffer>>;
  /** The agent's own handle on the blob in the cache, for children, pushes and proxy reads. */
  cached: CachedBlob;
  children: Map<string, string>;
  lastUsed: number;
}

/** Pushed chunks held in memory per blob before the cache takes them. */
const MAX_INBOX = 64;
/** A root that failed is not asked again for this long: reads go to the registry (counted). */
const ROOT_RETRY_MS = 5000;
const HEARTBEAT_MS = 20_000;

export class P2PAgent {
  readonly counters = new P2PCounters();
  /** Work nobody waited for (hello, push, re-join) that failed: logged, never thrown. */
  backgroundFailures = 0;
  private readonly blobs = new Map<string, BlobState>();
  private readonly planner: PushPlanner;
  private rootKey: string | undefined;
  private rootDownUntil = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly proxyGrants = new Map<string, number>();
  readonly hostId: string;
  readonly address: string;
  readonly chunkSize: number;
  /** When a chunk request to a peer is too slow (measured from successful ones). */
  private readonly deadline: TransferDeadline;
  /** When a request to a silent peer may be hedged to the next hop up. */
  private readonly hedges = new HedgeGate();

  private constructor(
    private readonly opts: AgentOptions,
    private readonly server: Server,
  ) {
    const a = server.address() as AddressInfo;
    const host = a.address === '0.0.0.0' || a.address === '::' ? '127.0.0.1' : a.address;
    this.address = (opts.advertise ?? `http://${host}:${a.port}`).replace(/\/$/, '');
    this.hostId = opts.hostId ?? `${hostname()}:${a.port}`;
    this.planner = new PushPlanner({ window: opts.pushWindow ?? 2, idleMs: 60_000 });
    this.chunkSize = opts.chunkSize ?? CHUNK_SIZE;
    const cap = opts.chunkTimeoutMs ?? 10_000;
    this.deadline = new TransferDeadline({ minMs: Math.min(1000, cap), maxMs: cap });
  }

  static async start(opts: AgentOptions): Promise<P2PAgent> {
    const { host, port } = parseListen(opts.listen);
    const cs = opts.chunkSize ?? CHUNK_SIZE;
    if (!Number.isSafeInteger(cs) || cs < 4096 || (cs & (cs - 1)) !== 0 || cs !== opts.cache.refillSize) {
      throw new DadiError(
        'EINVAL',
        `p2p chunk size ${cs} must be a power of two ≥ 4096 and equal the cache's refill size (${opts.cache.refillSize})`,
      );
    }
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new DadiError('EIO', `p2p agent cannot listen on ${opts.listen}: ${(e as Error).message}`)),
      );
      server.listen(port, host, () => resolve());
    });
    const agent = new P2PAgent(opts, server);
    serveRequests(
      server,
      (req, res) => agent.handle(req, res),
      (m) => agent.log(m),
    );
    agent.heartbeat = setInterval(() => agent.refresh(), HEARTBEAT_MS);
    agent.heartbeat.unref();
    return agent;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
    for (const b of this.blobs.values()) await b.cached.close();
    this.blobs.clear();
  }

  private get root(): string {
    return this.opts.root.replace(/\/$/, '');
  }

  private log(m: string): void {
    (this.opts.log ?? ((x) => process.stderr.write(`dadi p2p: ${x}\n`)))(m);
  }

  /** Deadline of requests other than chunk transfers (joins, reports, hellos, pushes). */
  private get timeout(): number {
    return this.opts.chunkTimeoutMs ?? 10_000;
  }

  /**
   * The blob as a BlockFile for the layer stack to put under the host cache (src/image). Reads
   * are served chunk by chunk through the tree. Closing it leaves the agent's state alone.
   */
  async open(ref: AgentBlobRef, size: number): Promise<BlockFile> {
    const state = this.state(ref, size);
    let closed = false;
    return {
      name: state.name,
      size: state.size,
      read: async (buf, offset) => {
        checkRead(state.name, offset, closed);
        return this.readRange(state, buf, offset);
      },
      close: async () => {
        closed = true;
      },
    };
  }

  private state(ref: AgentBlobRef, size: number): BlobState {
    let s = this.blobs.get(ref.digest);
    if (!s) {
      const b: BlobRef = { registry: ref.registry, repository: ref.repository, digest: ref.digest };
      const name = `${ref.registry}/${ref.repository}@${ref.digest}`;
      const source: BlockFile = {
        name: `p2p ${name}`,
        size,
        read: (buf, offset) => this.readRange(s!, buf, offset),
        close: async () => {},
      };
      s = {
        ref: b,
        name,
        size,
        chunkDigests: ref.chunkDigests,
        path: [],
        inbox: new Map(),
        inflight: new Map(),
        cached: this.opts.cache.open(ref.digest, source),
        children: new Map(),
        lastUsed: Date.now(),
      };
      this.blobs.set(ref.digest, s);
    } else if (ref.chunkDigests && !s.chunkDigests) s.chunkDigests = ref.chunkDigests;
    return s;
  }

  private async authorization(registry: string): Promise<string | undefined> {
    const c = await this.opts.credentials(registry);
    return c ? basicAuthorization(c) : undefined;
  }

  /** Join (or re-join) the blob's tree with `authorization`; EAUTH when the root denies it. */
  private async join(s: BlobState, authorization: string | undefined): Promise<JoinAnswer> {
    const headers: Record<string, string> = authorization ? { authorization } : {};
    const body = { blob: s.ref, host: { id: this.hostId, address: this.address, upload: this.opts.upload ?? 1 } };
    let a: JoinAnswer;
    try {
      a = (await this.patientRoot('join', () =>
        postJson(`${this.root}${PATHS.join}`, body, headers, this.timeout),
      )) as JoinAnswer;
    } catch (e) {
      if (e instanceof PeerError && e.why === 'denied') {
        throw new DadiError('EAUTH', `${s.name}: the p2p root denied access: ${e.message}`);
      }
      if (e instanceof PeerError && e.status === 404) throw new DadiError('ENOTFOUND', `${s.name}: blob not found`);
      throw e;
    }
    if (a.size !== s.size) throw new DadiError('EFORMAT', `${s.name}: the root says ${a.size} bytes, not ${s.size}`);
    const before = s.path[0]?.id;
    s.path = a.path;
    s.grant = a.grant;
    this.rootKey = a.publicKey;
    const parent = a.path[0];
    if (parent && parent.id !== before) this.background(this.hello(s, parent), `${s.name}: hello`);
    return a;
  }

  /** Tell the parent we joined under it, so it pushes us chunks. */
  private async hello(s: BlobState, parent: HostRef): Promise<void> {
    try {
      await postJson(
        `${parent.address}${PATHS.hello}?${blobQuery(s.ref)}`,
        {},
        { [HEADERS.grant]: s.grant ?? '', [HEADERS.host]: this.hostId, [HEADERS.address]: this.address },
        this.timeout,
      );
    } catch (e) {
      this.log(`${s.name}: hello to parent ${parent.id} failed: ${(e as Error).message}`);
    }
  }

  /** Join once per blob (again after the root was down); a down root leaves the state unjoined. */
  private ensureJoined(s: BlobState): Promise<void> {
    if (s.grant || Date.now() < this.rootDownUntil) return Promise.resolve();
    s.joined ??= (async () => {
      try {
        await this.join(s, await this.authorization(s.ref.registry));
      } catch (e) {
        if (e instanceof DadiError) throw e;
        this.rootDown(e);
      } finally {
        s.joined = undefined;
      }
    })();
    return s.joined;
  }

  /**
   * A call to the root, asked once more when it timed out: a root past the deadline on a busy
   * machine is slow, not gone, and declaring it down sends this host's chunks to the registry for
   * ROOT_RETRY_MS (bench/p2p at 6980c9c, 50 hosts on 2 cores at load 7: one failed root request,
   * then 3 chunks from the registry, +3.1 MB on the root's 9.0, while the root served everyone
   * else). A root that is really down refuses the connection (no second wait: a connection closed
   * under the request is retried by peer-client.ts itself) or times out twice; then the caller
   * falls back. Counted as a root failure, logged.
   */
  private async patientRoot<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof PeerError && e.why === 'timeout')) throw e;
      this.counters.failed('root');
      this.log(`root ${this.root} slow (${what}: ${e.message}): asking it once more before the registry`);
      return call();
    }
  }

  private rootDown(e: unknown): void {
    if (Date.now() >= this.rootDownUntil) {
      this.log(`root ${this.root} unusable (${(e as Error).message}): reading from the registry (counted)`);
    }
    this.rootDownUntil = Date.now() + ROOT_RETRY_MS;
  }

  private refresh(): void {
    const now = Date.now();
    for (const s of this.blobs.values()) {
      if (!s.grant || now - s.lastUsed > 10 * 60_000) continue;
      this.background(
        this.authorization(s.ref.registry).then((auth) => this.join(s, auth)),
        `${s.name}: re-join`,
      );
    }
  }

  /** Fill `buf` from the blob at `offset`, chunk by chunk. */
  private async readRange(s: BlobState, buf: Uint8Array, offset: number): Promise<number> {
    const end = Math.min(s.size, offset + buf.length);
    if (end <= offset) return 0;
    s.lastUsed = Date.now();
    const { first, end: last } = chunksCovering(s.size, offset, end - offset, this.chunkSize);
    await Promise.all(
      Array.from({ length: last - first }, async (_, k) => {
        const i = first + k;
        const bytes = await this.chunk(s, i);
        const at = i * this.chunkSize;
        const from = Math.max(offset, at);
        const to = Math.min(end, at + bytes.length);
        buf.set(bytes.subarray(from - at, to - at), from - offset);
      }),
    );
    return end - offset;
  }

  /** Chunk `i`: pushed, in flight, or fetched now along the route. */
  private chunk(s: BlobState, i: number): Promise<Buffer> {
    const pushed = s.inbox.get(i);
    if (pushed) {
      this.arrived(s, i, pushed);
      return Promise.resolve(pushed);
    }
    let p = s.inflight.get(i);
    if (!p) {
      p = this.fetchChunk(s, i).finally(() => s.inflight.delete(i));
      s.inflight.set(i, p);
    }
    return p;
  }

  private async fetchChunk(s: BlobState, i: number): Promise<Buffer> {
    await this.ensureJoined(s);
    const { offset, length } = chunkRange(s.size, i, this.chunkSize);
    const rootUsable = Date.now() >= this.rootDownUntil;
    // Without the root, still the parent and ancestors (their grants hold), then the registry.
    let route: Hop[] = s.grant ? routeOf({ path: s.path }) : [{ kind: 'registry' }];
    if (!rootUsable) route = route.filter((h) => h.kind !== 'root');
    // What peers' chunks are checked against, loaded before asking anyone: failing to load it is
    // this host's own failure (say, the registry timed out on the digest list), never a peer's.
    // Then this chunk comes from trusted sources only (the root, whose bytes are the registry's,
    // as for the ZFile layout), and the next chunk tries loading it again.
    let verifier: ChunkVerifier | undefined;
    if (route.some((h) => h.kind !== 'registry')) {
      try {
        verifier = await this.verifier(s);
      } catch (e) {
        this.log(
          `${s.name}: chunk ${i}: cannot load what peers' chunks are checked against (${(e as Error).message}); ` +
            "this host's own failure, no peer blamed: reading the chunk from the root, trying again for the next one",
        );
        route = route.filter((h) => h.kind !== 'peer');
      }
    }
    const f = new ChunkFetch(route);
    for (let next = f.current; next; ) {
      const hop: Hop = next;
      const source: ChunkSource = hop.kind;
      // The registry is only ever on a route as the fallback: counted here, logged by rootDown/after.
      if (hop.kind === 'registry') this.counters.fallback();
      let v: FailureVerdict;
      try {
        const started = performance.now();
        const got = await this.fetchHedged(s, hop, f.hedge, offset, length, verifier);
        if (got.from !== hop) {
          // The hedge won: its bytes are verified, the silent peer is reported slow.
          const from: ChunkSource = got.from.kind === 'peer' ? 'peer' : 'root';
          this.counters.fetched(from, got.bytes.length);
          this.opts.onFetch?.(from, got.bytes.length, (performance.now() - started) / 1000);
          this.arrived(s, i, got.bytes);
          return got.bytes;
        }
        const bytes = got.bytes;
        if (hop.kind !== 'registry' && verifier) {
          const check = verifier.verify(offset, bytes);
          if (!check.ok) {
            this.counters.corrupt();
            this.counters.failed(source);
            this.log(`${s.name}: wrong bytes from ${hopName(hop)}: ${check.reason}`);
            v = f.fail('corrupt');
            await this.after(s, v);
            next = v.next;
            continue;
          }
        }
        this.counters.fetched(source, bytes.length);
        // Registry reads are timed by the registry client itself (RegistryClientOptions.onRangeRead).
        if (hop.kind !== 'registry') this.opts.onFetch?.(hop.kind, bytes.length, (performance.now() - started) / 1000);
        this.arrived(s, i, bytes);
        return bytes;
      } catch (e) {
        if (e instanceof DadiError && hop.kind === 'registry') throw e;
        this.counters.failed(source);
        const failure = e instanceof PeerError ? e.why : 'unreachable';
        if (failure === 'denied' && hop.kind === 'root') {
          f.fail('denied');
          throw new DadiError('EAUTH', `${s.name}: the p2p root denied access: ${(e as Error).message}`);
        }
        if (hop.kind === 'root') this.rootDown(e);
        // A peer refusing our grant (it holds an older root key) is skipped, not blamed.
        v = f.fail(failure === 'denied' ? 'refused' : failure);
        this.log(`${s.name}: chunk ${i} from ${hopName(hop)} failed: ${(e as Error).message}`);
        await this.after(s, v);
        next = v.next;
      }
    }
    throw new DadiError(
      'EIO',
      `${s.name}: chunk ${i}: every source failed (${f.failures.map((x) => `${hopName(x.hop)}: ${x.why}`).join(', ')})`,
    );
  }

  /** Act on a failure verdict: tell the root about a bad peer (getting a new parent), count a fallback. */
  private async after(s: BlobState, v: FailureVerdict): Promise<void> {
    if (v.registryFallback) this.log(`${s.name}: falling back to the registry: the root failed`);
    if (!v.report || !s.grant) return;
    try {
      const a = (await postJson(
        `${this.root}${PATHS.report}`,
        { digest: s.ref.digest, host: this.hostId, peer: v.report.peer, problem: v.report.problem },
        { [HEADERS.grant]: s.grant },
        this.timeout,
      )) as { path: HostRef[] };
      const before = s.path[0]?.id;
      s.path = a.path;
      if (s.path[0]?.id !== before) {
        this.counters.reparented();
        this.log(`${s.name}: new parent ${s.path[0]?.id ?? 'the root'} (was ${before})`);
        if (s.path[0]) this.background(this.hello(s, s.path[0]), `${s.name}: hello`);
      }
    } catch (e) {
      this.log(`${s.name}: report to the root failed: ${(e as Error).message}`);
    }
  }

  /**
   * `hop`'s answer or, when `hop` is a peer that went silent (p2p/hedge.ts HedgeGate: nothing at
   * all from it, no bytes and no heartbeat, for the hedge delay, within the gate's caps), the first
   * good one of it and `up` (the next hop on the route: ChunkFetch.hedge). A dead parent then costs
   * one hedge delay, not a whole deadline and a re-fetch from the root; a live one that is still
   * fetching the chunk itself sends heartbeats (serveChild) and is not hedged. A hedge that wins
   * aborts the peer's request and reports the peer slow (a new parent); the hedge's bytes are
   * verified here, wrong ones blame their sender and are dropped. When the peer's request fails
   * while the hedge runs, the hedge's answer decides.
   */
  private fetchHedged(
    s: BlobState,
    hop: Hop,
    up: Hop | undefined,
    offset: number,
    length: number,
    verifier: ChunkVerifier | undefined,
  ): Promise<{ bytes: Buffer; from: Hop }> {
    const upUsable = up?.kind === 'peer' || (up?.kind === 'root' && Date.now() >= this.rootDownUntil);
    if (hop.kind !== 'peer' || !up || up.kind === 'registry' || !upUsable || !verifier) {
      return this.fetchFrom(s, hop, offset, length).then((bytes) => ({ bytes, from: hop }));
    }
    const peer = hop.id;
    const upKind = up.kind;
    const sentMs = performance.now();
    const stopPeer = new AbortController();
    const stopHedge = new AbortController();
    return new Promise((resolve, reject) => {
      let settled = false;
      let hedging = false;
      let peerError: unknown;
      let timer: NodeJS.Timeout | undefined;
      /** The race is over: the gate learns whether the peer proved silent. */
      const endHedge = (peerSilent: boolean) => {
        if (!hedging) return;
        hedging = false;
        this.hedges.settled(peer, peerSilent);
      };
      const win = (bytes: Buffer, from: Hop) => {
        settled = true;
        clearTimeout(timer);
        endHedge(from !== hop);
        (from === hop ? stopHedge : stopPeer).abort();
        resolve({ bytes, from });
      };
      const hedge = async () => {
        hedging = true;
        this.counters.hedged();
        let bytes: Buffer | undefined;
        try {
          bytes = await this.fetchFrom(s, up, offset, length, stopHedge.signal);
        } catch {
          if (!settled) this.counters.failed(upKind);
        }
        if (settled) return;
        if (bytes) {
          const check = verifier.verify(offset, bytes);
          if (check.ok) {
            win(bytes, up);
            this.background(this.after(s, blame(peer, 'slow')), `${s.name}: report`);
            return;
          }
          this.counters.corrupt();
          this.log(`${s.name}: wrong bytes from ${hopName(up)} (hedge): ${check.reason}`);
          if (up.kind === 'peer') this.background(this.after(s, blame(up.id, 'corrupt')), `${s.name}: report`);
        }
        endHedge(false);
        if (peerError !== undefined) {
          settled = true;
          reject(peerError);
        }
      };
      const check = () => {
        if (settled) return;
        const d = this.hedges.decide(peer, upKind, sentMs, performance.now(), this.deadline.hedgeMs(length));
        if (d.hedge) void hedge();
        else if (d.recheckInMs !== undefined) timer = setTimeout(check, d.recheckInMs);
      };
      this.fetchFrom(s, hop, offset, length, stopPeer.signal).then(
        (bytes) => {
          if (!settled) win(bytes, hop);
        },
        (e: unknown) => {
          if (settled) return;
          clearTimeout(timer);
          if (hedging) peerError = e;
          else {
            settled = true;
            reject(e);
          }
        },
      );
      check();
    });
  }

  /** Bytes [offset, offset+length) of the blob from `hop`; a peer or the root slower than the deadline fails as 'timeout'. */
  private async fetchFrom(
    s: BlobState,
    hop: Hop,
    offset: number,
    length: number,
    abort?: AbortSignal,
  ): Promise<Buffer> {
    if (hop.kind === 'registry') {
      const buf = Buffer.allocUnsafe(length);
      const n = await this.opts.client.readBlob(
        { registry: s.ref.registry, repository: s.ref.repository },
        s.ref.digest,
        buf,
        offset,
      );
      if (n !== length) throw new DadiError('EIO', `${s.name}: short read at ${offset} from the registry`);
      return buf;
    }
    const base = hop.kind === 'root' ? this.root : hop.address;
    const get = () =>
      getRange(
        `${base}${PATHS.blob}?${blobQuery(s.ref)}`,
        offset,
        length,
        { [HEADERS.grant]: s.grant ?? '', [HEADERS.host]: this.hostId, [HEADERS.address]: this.address },
        // A slow peer is left for another (re-parenting is cheap); a slow root only for the
        // registry, which costs egress: the root gets the whole cap, twice (patientRoot).
        hop.kind === 'peer' ? this.deadline.deadlineMs(length) : this.timeout,
        abort,
        // Bytes or heartbeats from a peer: it is alive (the hedge gate's silence starts anew).
        hop.kind === 'peer' ? () => this.hedges.heard(hop.id, performance.now()) : undefined,
      );
    // A hedge to the root (abort given) is not waited on twice: the peer's request still runs.
    const a = hop.kind === 'root' && !abort ? await this.patientRoot(`chunk at ${offset}`, get) : await get();
    this.deadline.observe(length, a.firstByteMs, a.totalMs);
    return a.bytes;
  }

  /** What peers' chunks of this blob are checked against: its digest list, else ZFile CRCs. */
  private verifier(s: BlobState): Promise<ChunkVerifier> {
    s.verifier ??= (async () => {
      const blob = { digest: s.ref.digest as Digest, size: s.size };
      const repo = { registry: s.ref.registry, repository: s.ref.repository };
      const warn = (m: string) => this.log(m);
      if (s.chunkDigests) {
        const d = s.chunkDigests;
        const bytes = await this.opts.client.fetchBlob(repo, d.digest, { maxSize: d.size });
        const digests = decodeChunkDigests(bytes, `${s.name} chunk digests`, blob);
        // A chunk of ours is a whole number of the list's chunks (both powers of two) or not checkable by it.
        if (this.chunkSize % digests.chunkSize === 0) return new ChunkVerifier({ blob, digests, warn });
        this.log(
          `${s.name}: the image's chunk digest list has ${digests.chunkSize}-byte chunks, larger than the ` +
            `${this.chunkSize}-byte chunks this agent moves (p2pConfig.chunkSize): checking peer chunks by ZFile block CRCs instead`,
        );
      }
      // The ZFile layout is read from trusted sources only (root, else registry): a peer could forge it.
      const trusted: BlockFile = {
        name: s.name,
        size: s.size,
        read: async (buf, offset) => {
          const n = Math.min(buf.length, s.size - offset);
          if (n <= 0) return 0;
          let got: Buffer;
          try {
            if (!s.grant || Date.now() < this.rootDownUntil) throw new Error('root unusable');
            got = await this.fetchFrom(s, { kind: 'root' }, offset, n);
          } catch {
            got = await this.fetchFrom(s, { kind: 'registry' }, offset, n);
          }
          buf.set(got);
          return n;
        },
        close: async () => {},
      };
      return new ChunkVerifier({ blob, zfile: await zfileBlockMap(trusted), warn });
    })();
    s.verifier.catch(() => (s.verifier = undefined));
    return s.verifier;
  }

  /** This host now holds chunk `i`: push it down to children that joined. */
  private arrived(s: BlobState, i: number, bytes: Buffer): void {
    for (const o of this.planner.arrived(s.ref.digest, i, Date.now())) this.startPush(s, o, bytes);
  }

  private async push(s: BlobState, o: PushOrder, bytes?: Buffer): Promise<void> {
    const address = s.children.get(o.child);
    // 'had': the child holds or fetches the chunk already, as good as kept for the planner.
    let ok = false;
    if (address) {
      try {
        let data = bytes;
        if (!data) {
          const r = chunkRange(s.size, o.chunk, this.chunkSize);
          data = Buffer.allocUnsafe(r.length);
          await s.cached.read(data, r.offset);
        }
        const answer = await pushChunk(
          `${address}${PATHS.push}?${blobQuery(s.ref)}&chunk=${o.chunk}`,
          data,
          this.hostId,
          this.timeout,
        );
        ok = answer !== 'failed';
        if (answer === 'kept') this.counters.pushed(data.length);
      } catch {
        ok = false;
      }
    }
    for (const next of this.planner.done(o, ok, Date.now())) this.startPush(s, next);
  }

  private startPush(s: BlobState, o: PushOrder, bytes?: Buffer): void {
    this.background(this.push(s, o, bytes), `${s.name}: push of chunk ${o.chunk} to ${o.child}`);
  }

  /** Work nobody waits for: its failure is logged and counted, never an unhandled rejection. */
  private background(p: Promise<unknown>, what: string): void {
    p.catch((e: unknown) => {
      this.backgroundFailures++;
      this.log(`${what} failed: ${(e as Error)?.message ?? String(e)}`);
    });
  }

  // ------------------------------------------------------------------ serving

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      if (req.method === 'GET' && url.pathname === PATHS.blob) return await this.serveChild(req, res, url);
      if (req.method === 'POST' && url.pathname === PATHS.hello) return this.acceptChild(req, res, url);
      if (req.method === 'PUT' && url.pathname === PATHS.push) return await this.receivePush(req, res, url);
      if (req.method === 'GET' && url.pathname === PATHS.status) {
        return sendJson(res, 200, { host: this.hostId, counters: this.counters.snapshot() });
      }
      const proxied = req.method === 'GET' || req.method === 'HEAD' ? parseProxyPath(req.url ?? '') : undefined;
      if (proxied) return await this.serveProxy(req, res, proxied);
      sendJson(res, 404, { error: `no such endpoint: ${req.method} ${url.pathname}` });
    } catch (e) {
      sendError(res, e);
    }
  }

  private known(url: URL, req: IncomingMessage): BlobState {
    const ref = parseBlobRef(Object.fromEntries(url.searchParams));
    const s = this.blobs.get(ref.digest);
    if (!s) throw new DadiError('ENOTFOUND', `${ref.digest}: this host is not in that blob's tree`);
    if (!this.rootKey) throw new DadiError('EAUTH', `${ref.digest}: this host has no root key yet`);
    const why = checkGrant(this.rootKey, headerOf(req, HEADERS.grant), ref.digest, Date.now());
    if (why) throw new DadiError('EAUTH', `${ref.digest}: ${why}`);
    return s;
  }

  /** A child said hello: it joined the blob under this host and wants pushes. */
  private acceptChild(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const s = this.known(url, req);
    const child = headerOf(req, HEADERS.host);
    const address = headerOf(req, HEADERS.address);
    if (!child || !address || !/^https?:\/\//.test(address)) {
      throw new DadiError('EINVAL', 'hello needs X-P2P-Host and an http(s) X-P2P-Address');
    }
    s.children.set(child, address.replace(/\/$/, ''));
    this.planner.joined(s.ref.digest, child, Date.now());
    sendJson(res, 200, {});
  }

  private async serveChild(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const s = this.known(url, req);
    const range = parseRange(req.headers.range);
    if (!range || range.offset >= s.size || range.length > 16 * this.chunkSize) {
      throw new DadiError('ERANGE', `${s.name}: bad or too large range ${req.headers.range ?? '(none)'}`);
    }
    const child = headerOf(req, HEADERS.host);
    const length = Math.min(range.length, s.size - range.offset);
    if (child) {
      const { first, end } = chunksCovering(s.size, range.offset, length, this.chunkSize);
      for (let i = first; i < end; i++) this.planner.requested(s.ref.digest, child, i, Date.now());
      const address = headerOf(req, HEADERS.address);
      if (address && /^https?:\/\//.test(address) && !s.children.has(child)) s.children.set(child, address);
    }
    const buf = Buffer.allocUnsafe(length);
    // While the read waits (this host fetching the chunk itself), the child gets a heartbeat (an
    // HTTP 102) every WAIT_HEARTBEAT_MS: a parent waiting on its own parent is alive, not hedged against.
    const beat = setInterval(() => {
      if (!res.destroyed && !res.headersSent) res.writeProcessing();
    }, WAIT_HEARTBEAT_MS);
    let n: number;
    try {
      n = await s.cached.read(buf, range.offset);
    } finally {
      clearInterval(beat);
    }
    this.counters.served(n);
    res.writeHead(206, {
      'content-length': n,
      'content-range': `bytes ${range.offset}-${range.offset + n - 1}/${s.size}`,
      [HEADERS.source]: this.hostId,
    });
    res.end(buf.subarray(0, n));
  }

  private async receivePush(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const ref = parseBlobRef(Object.fromEntries(url.searchParams));
    const s = this.blobs.get(ref.digest);
    const i = Number(url.searchParams.get('chunk'));
    const from = headerOf(req, HEADERS.host);
    if (!s || !from || s.path[0]?.id !== from) {
      req.resume();
      return sendJson(res, 403, { error: `${ref.digest}: pushes are taken from this host's parent only` });
    }
    const { offset, length } = chunkRange(s.size, i, this.chunkSize);
    // Refused before the body is read: a chunk this host holds or is fetching costs no copy.
    if (s.inbox.size >= MAX_INBOX || s.inbox.has(i) || s.inflight.has(i) || (await s.cached.holds(offset, length))) {
      req.resume();
      return sendJson(res, 409, { error: 'not needed' });
    }
    let verifier: ChunkVerifier;
    try {
      verifier = await this.verifier(s);
    } catch (e) {
      // This host cannot check it (its own failure): refused, the parent is not blamed.
      req.resume();
      return sendJson(res, 503, { error: `cannot check pushed chunks now: ${(e as Error).message}` });
    }
    const bytes = await readRequestBody(req, this.chunkSize);
    const check = bytes.length === length ? verifier.verify(offset, bytes) : undefined;
    if (!check?.ok) {
      this.counters.corrupt();
      this.log(`${s.name}: wrong pushed chunk ${i} from ${from}: ${check?.reason ?? `${bytes.length} bytes`}`);
      await this.after(s, blame(from, 'corrupt'));
      return sendJson(res, 422, { error: 'chunk failed verification' });
    }
    s.inbox.set(i, bytes);
    this.hedges.heard(from, performance.now());
    this.counters.receivedPush(bytes.length);
    res.writeHead(204).end();
    // The cache takes it through the ordinary fill path (its source finds it in the inbox).
    s.cached
      .prefetch(offset, length)
      .catch(() => {})
      .finally(() => s.inbox.delete(i));
  }

  /**
   * overlaybd's P2P proxy form. The requester's Authorization goes to the root (join) and nowhere
   * else; without the root, the request is passed to the registry as it came (counted).
   */
  private async serveProxy(
    req: IncomingMessage,
    res: ServerResponse,
    p: BlobRef & { upstream: string },
  ): Promise<void> {
    const auth = headerOf(req, 'authorization');
    let s = this.blobs.get(p.digest);
    if (Date.now() >= this.rootDownUntil) {
      const key = `${auth ?? ''} ${p.digest}`;
      try {
        if ((this.proxyGrants.get(key) ?? 0) <= Date.now() || !s?.grant) {
          const probe: BlobState = s ?? this.state(p, await this.sizeFromRoot(p, auth));
          s = probe;
          await this.join(probe, auth);
          this.proxyGrants.set(key, Date.now() + 60_000);
        }
      } catch (e) {
        if (e instanceof DadiError) throw e;
        this.rootDown(e);
      }
    }
    if (!s?.grant || Date.now() < this.rootDownUntil) return this.passThrough(req, res, p.upstream, auth);
    const range = parseRange(req.headers.range) ?? { offset: 0, length: s.size };
    if (range.offset >= s.size) throw new DadiError('ERANGE', `${s.name}: range past the end`);
    const length = Math.min(range.length, s.size - range.offset, 64 * CHUNK_SIZE);
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': s.size }).end();
      return;
    }
    const buf = Buffer.allocUnsafe(length);
    const n = await s.cached.read(buf, range.offset);
    this.counters.served(n);
    res.writeHead(req.headers.range ? 206 : 200, {
      'content-length': n,
      ...(req.headers.range ? { 'content-range': `bytes ${range.offset}-${range.offset + n - 1}/${s.size}` } : {}),
      [HEADERS.source]: this.hostId,
    });
    res.end(buf.subarray(0, n));
  }

  /** The blob's size, from a join answer (the root learnt it checking access). */
  private async sizeFromRoot(p: BlobRef, auth: string | undefined): Promise<number> {
    try {
      const a = (await postJson(
        `${this.root}${PATHS.join}`,
        { blob: p, host: { id: this.hostId, address: this.address, upload: this.opts.upload ?? 1 } },
        auth ? { authorization: auth } : {},
        this.timeout,
      )) as JoinAnswer;
      return a.size;
    } catch (e) {
      if (e instanceof PeerError && e.why === 'denied') {
        throw new DadiError('EAUTH', `${p.registry}/${p.repository}@${p.digest}: the p2p root denied access`);
      }
      throw e;
    }
  }

  private async passThrough(
    req: IncomingMessage,
    res: ServerResponse,
    upstream: string,
    auth: string | undefined,
  ): Promise<void> {
    this.counters.fallback();
    this.log(`proxy ${upstream}: the root is unusable, passing the request to the registry`);
    const headers: Record<string, string> = {};
    if (auth) headers.authorization = auth;
    if (req.headers.range) headers.range = String(req.headers.range);
    const up = await request(upstream, {
      method: req.method === 'HEAD' ? 'HEAD' : 'GET',
      headers,
      headersTimeout: this.timeout,
      bodyTimeout: this.timeout,
    });
    const out: Record<string, string> = {};
    for (const h of ['content-length', 'content-range', 'content-type', 'www-authenticate', 'location']) {
      const v = up.headers[h];
      if (typeof v === 'string') out[h] = v;
    }
    res.writeHead(up.statusCode, out);
    let n = 0;
    const count = async function* (body: AsyncIterable<Buffer>) {
      for await (const c of body) {
        n += c.length;
        yield c;
      }
    };
    // pipeline, not a write loop: a client gone or a stalled upstream ends both sides, no leak.
    await pipeline(up.body, count, res);
    if (up.statusCode === 200 || up.statusCode === 206) this.counters.fetched('registry', n);
  }

  status(): unknown {
    return {
      host: this.hostId,
      address: this.address,
      root: this.root,
      blobs: [...this.blobs.values()].map((s) => ({ digest: s.ref.digest, parent: s.path[0]?.id ?? null })),
      counters: this.counters.snapshot(),
    };
  }
}

/** A verdict that only reports `peer` to the root (nothing is fetched on its account). */
function blame(peer: string, problem: PeerProblem): FailureVerdict {
  return { report: { peer, problem }, next: undefined, registryFallback: false };
}

function hopName(h: Hop): string {
  return h.kind === 'peer' ? `peer ${h.id}` : h.kind;
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
