// The OCI distribution client: manifests (GET/HEAD/PUT, index → platform), blobs (HEAD, ranged
// GET into a caller buffer, verified whole GETs and streams, monolithic/chunked uploads,
// cross-repository mount). HTTP, auth and retries live in transport.ts; a blob as a BlockFile in
// remote-blob.ts.

import type { BlockFile } from '../blockfile/blockfile.js';
import type { Sink } from '../blockfile/sink.js';
import { DadiError } from '../errors.js';
import { type Digest, Digester, isDigest, parseDigest, sha256Of } from '../oci/digest.js';
import {
  type ImageConfig,
  type ImageManifest,
  type ParsedManifest,
  type Platform,
  parseImageConfig,
  parseManifest,
} from '../oci/manifest.js';
import { ACCEPT_MANIFEST } from '../oci/media-types.js';
import { formatPlatform, hostPlatform, selectPlatform } from '../oci/platform.js';
import { repositoryScope } from './auth.js';
import { type CredentialProvider, type Credentials, defaultCredentials, staticCredentials } from './credentials.js';
import { formatReference, manifestTarget, type Reference } from './reference.js';
import {
  discard,
  type HttpResponse,
  header,
  type RequestSpec,
  readBody,
  statusError,
  TransientError,
  Transport,
  type TransportOptions,
  type TransportStats,
} from './transport.js';

export interface RegistryClientOptions extends TransportOptions {
  /** Credentials: a fixed pair, a lookup function, or (default) flags/env/docker config via `defaultCredentials()`. */
  credentials?: Credentials | CredentialProvider;
  /** Platform chosen from indexes (default: this machine's). */
  platform?: Platform;
  /** Largest manifest accepted (default 4 MiB). */
  maxManifestBytes?: number;
  /** Upload chunk size; blobs up to this size go in one PUT (default 32 MiB). */
  uploadChunkBytes?: number;
}

/** A repository on a registry; a `Reference` is one. */
export interface RepoRef {
  registry: string;
  repository: string;
}

/** Per-operation options. */
export interface OpOptions {
  signal?: AbortSignal;
  /** Absolute deadline in ms since epoch (default: now + the client's deadlineMs). */
  deadline?: number;
}

export interface FetchedManifest {
  /** What was asked for. */
  ref: Reference;
  /** sha256 of `bytes` (verified against the ref's digest when fetched by digest). */
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  parsed: ParsedManifest;
}

export interface ResolvedImage {
  ref: Reference;
  /** Digest of the image manifest (not of the index). */
  digest: Digest;
  mediaType: string;
  manifest: ImageManifest;
  bytes: Buffer;
  /** Indexes walked through to reach the manifest, outermost first. */
  indexes: FetchedManifest[];
}

export interface PushedBlob {
  digest: Digest;
  size: number;
  /** `exists`: the registry had it (HEAD); `mounted`: cross-repository mount; `uploaded`. */
  how: 'exists' | 'mounted' | 'uploaded';
}

export interface RegistryStats extends TransportStats {
  tokenRequests: number;
  /** Ranged blob reads completed, and the bytes they delivered. */
  rangeReads: number;
  rangeBytes: number;
  /** Bytes of whole-blob GETs and streams. */
  blobBytes: number;
  /** Range requests the server answered with the whole blob (200): correct, but wasteful. */
  fullBodyFallbacks: number;
  bytesUploaded: number;
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** Parse `bytes a-b/total` (total undefined when `*`). */
export function parseContentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = v ? CONTENT_RANGE.exec(v.trim()) : null;
  if (!m) return undefined;
  const r: { start: number; end: number; total?: number } = { start: Number(m[1]), end: Number(m[2]) };
  if (m[3] !== '*') r.total = Number(m[3]);
  if (r.end < r.start || (r.total !== undefined && r.end >= r.total)) return undefined;
  return r;
}

function repoName(repo: RepoRef): string {
  return `${repo.registry}/${repo.repository}`;
}

/** Copy a response body into `buf[at, at+want)`; returns bytes copied. More than `want` is an error. */
async function bodyInto(res: HttpResponse, buf: Uint8Array, at: number, want: number, what: string): Promise<number> {
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    if (n + c.length > want) {
      throw new TransientError(new DadiError('EIO', `${what}: the server sent more bytes than the range asked for`));
    }
    buf.set(c, at + n);
    n += c.length;
  }
  return n;
}

/**
 * A registry client shared by everything in a process (one pool per origin).
 *
 * ```ts
 * const client = new RegistryClient({ insecure: ['reg.lan:5000'] });
 * const img = await client.resolveImage(parseReference('127.0.0.1:5000/app:v1'));
 * const n = await client.readBlob(img.ref, img.manifest.layers[0].digest, buf, 0);
 * await client.close();
 * ```
 */
export class RegistryClient {
  readonly transport: Transport;
  private readonly counters = { rangeReads: 0, rangeBytes: 0, blobBytes: 0, fullBodyFallbacks: 0, bytesUploaded: 0 };
  private warnedFullBody = false;

  constructor(readonly options: RegistryClientOptions = {}) {
    const c = options.credentials;
    const provider: CredentialProvider = typeof c === 'function' ? c : c ? staticCredentials(c) : defaultCredentials();
    this.transport = new Transport(options, provider);
  }

  get stats(): RegistryStats {
    return { ...this.transport.stats, tokenRequests: this.transport.tokenRequests, ...this.counters };
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private url(repo: RepoRef, tail: string): string {
    return `${this.transport.origin(repo.registry)}/v2/${repo.repository}/${tail}`;
  }

  private spec(
    method: RequestSpec['method'],
    url: string,
    repo: RepoRef,
    what: string,
    opts: OpOptions,
    push = false,
  ): RequestSpec {
    const s: RequestSpec = {
      method,
      url,
      what,
      auth: { registry: repo.registry, scopes: [repositoryScope(repo.repository, push ? 'pull,push' : 'pull')] },
    };
    if (opts.signal) s.signal = opts.signal;
    if (opts.deadline !== undefined) s.deadline = opts.deadline;
    return s;
  }

  // ---------------------------------------------------------------- registry

  /**
   * Check that the registry answers the v2 API with the configured credentials (what `dadi login`
   * verifies). Throws EAUTH naming the host when credentials are missing or wrong.
   */
  async ping(registry: string, opts: OpOptions = {}): Promise<void> {
    const s: RequestSpec = {
      method: 'GET',
      url: `${this.transport.origin(registry)}/v2/`,
      what: `registry ${registry}`,
      auth: { registry, scopes: [] },
    };
    if (opts.signal) s.signal = opts.signal;
    if (opts.deadline !== undefined) s.deadline = opts.deadline;
    await this.transport.request(s, async (res) => {
      if (res.status !== 200) throw await statusError(res, s.what);
    });
  }

  /** Tags of a repository (follows `Link` pagination). */
  async listTags(repo: RepoRef, opts: OpOptions = {}): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = this.url(repo, 'tags/list');
    for (let page = 0; url && page < 1000; page++) {
      const current: string = url;
      url = await this.transport.request(
        this.spec('GET', current, repo, `tags of ${repoName(repo)}`, opts),
        async (res) => {
          if (res.status === 404) throw new DadiError('ENOTFOUND', `${repoName(repo)}: repository not found`);
          if (res.status !== 200) throw await statusError(res, `tags of ${repoName(repo)}`);
          const j = JSON.parse((await readBody(res, 16 << 20, 'tags')).toString('utf8')) as { tags?: string[] | null };
          tags.push(...(j.tags ?? []));
          const link = header(res, 'link');
          const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
          return m ? new URL(m[1]!, current).toString() : undefined;
        },
      );
    }
    return tags;
  }

  // ---------------------------------------------------------------- manifests

  /**
   * Fetch a manifest or index by the ref's digest (verified) or tag. A Docker-Content-Digest
   * header that disagrees with the bytes is an error too.
   */
  async getManifest(ref: Reference, opts: OpOptions & { accept?: readonly string[] } = {}): Promise<FetchedManifest> {
    const target = manifestTarget(ref);
    const what = formatReference(ref);
    const s = this.spec('GET', this.url(ref, `manifests/${target}`), ref, `manifest ${what}`, opts);
    s.headers = { accept: (opts.accept ?? ACCEPT_MANIFEST).join(', ') };
    const max = this.options.maxManifestBytes ?? 4 << 20;
    return this.transport.request(s, async (res) => {
      if (res.status === 404) throw new DadiError('ENOTFOUND', `${what}: manifest not found`);
      if (res.status !== 200) throw await statusError(res, `manifest ${what}`);
      const bytes = await readBody(res, max, `manifest ${what}`);
      const digest = sha256Of(bytes);
      if (ref.digest && digest !== ref.digest) {
        throw new TransientError(new DadiError('ECORRUPT', `${what}: manifest digest mismatch (got ${digest})`));
      }
      const claimed = header(res, 'docker-content-digest');
      if (claimed?.startsWith('sha256:') && claimed !== digest) {
        throw new TransientError(
          new DadiError('ECORRUPT', `${what}: manifest bytes hash to ${digest}, the registry says ${claimed}`),
        );
      }
      const parsed = parseManifest(bytes, header(res, 'content-type'), `manifest ${what}`);
      return { ref, digest, mediaType: parsed.mediaType, bytes, parsed };
    });
  }

  /** HEAD a manifest: its digest, size and media type, or undefined when absent. */
  async headManifest(
    ref: Reference,
    opts: OpOptions = {},
  ): Promise<{ digest: Digest; size: number; mediaType: string } | undefined> {
    const what = formatReference(ref);
    const s = this.spec('HEAD', this.url(ref, `manifests/${manifestTarget(ref)}`), ref, `manifest ${what}`, opts);
    s.headers = { accept: ACCEPT_MANIFEST.join(', ') };
    const head = await this.transport.request(s, async (res) => {
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw await statusError(res, `manifest ${what}`);
      const d = header(res, 'docker-content-digest');
      const size = Number(header(res, 'content-length'));
      return {
        digest: d && isDigest(d) ? d : undefined,
        size,
        mediaType: header(res, 'content-type')?.split(';')[0]?.trim() ?? '',
      };
    });
    if (!head) return undefined;
    if (head.digest && Number.isSafeInteger(head.size))
      return { digest: head.digest, size: head.size, mediaType: head.mediaType };
    // No usable digest header: fetch to know.
    const m = await this.getManifest(ref, opts);
    return { digest: m.digest, size: m.bytes.length, mediaType: m.mediaType };
  }

  /**
   * Resolve a ref to one image manifest: indexes (nested too) are walked to the entry for
   * `platform` (default: the client's, else this machine's).
   */
  async resolveImage(ref: Reference, opts: OpOptions & { platform?: Platform } = {}): Promise<ResolvedImage> {
    const want = opts.platform ?? this.options.platform ?? hostPlatform();
    const indexes: FetchedManifest[] = [];
    let m = await this.getManifest(ref, opts);
    for (let depth = 0; m.parsed.kind === 'index'; depth++) {
      if (depth >= 4) throw new DadiError('EFORMAT', `${formatReference(ref)}: indexes nested too deep`);
      indexes.push(m);
      const d = selectPlatform(m.parsed.index, want);
      if (!d) {
        const have = m.parsed.index.manifests.filter((x) => x.platform).map((x) => formatPlatform(x.platform!));
        throw new DadiError(
          'ENOTFOUND',
          `${formatReference(ref)}: no image for platform ${formatPlatform(want)} (available: ${have.join(', ') || 'none'})`,
        );
      }
      const next: Reference = { registry: ref.registry, repository: ref.repository, digest: d.digest };
      m = await this.getManifest(next, opts);
      if (m.bytes.length !== d.size) {
        throw new DadiError(
          'ECORRUPT',
          `${formatReference(next)}: manifest is ${m.bytes.length} bytes, the index says ${d.size}`,
        );
      }
    }
    if (m.parsed.kind !== 'manifest') throw new DadiError('EFORMAT', `${formatReference(ref)}: not an image manifest`);
    return { ref, digest: m.digest, mediaType: m.mediaType, manifest: m.parsed.manifest, bytes: m.bytes, indexes };
  }

  /**
   * PUT a manifest or index under a tag or digest (`ref.digest` wins, else `ref.tag`). Returns
   * its digest; the registry's Docker-Content-Digest must agree.
   */
  async putManifest(ref: Reference, bytes: Uint8Array, mediaType: string, opts: OpOptions = {}): Promise<Digest> {
    const digest = sha256Of(bytes);
    if (ref.digest && ref.digest !== digest) {
      throw new DadiError(
        'ECORRUPT',
        `${formatReference(ref)}: manifest bytes hash to ${digest}, not the digest given`,
      );
    }
    const target = ref.digest ?? ref.tag ?? digest;
    const what = `manifest ${formatReference(ref)}`;
    const s = this.spec('PUT', this.url(ref, `manifests/${target}`), ref, what, opts, true);
    s.headers = { 'content-type': mediaType };
    s.body = bytes;
    return this.transport.request(s, async (res) => {
      if (res.status !== 201 && res.status !== 200) throw await statusError(res, what);
      const claimed = header(res, 'docker-content-digest');
      if (claimed && claimed !== digest)
        throw new DadiError('ECORRUPT', `${what}: the registry stored ${claimed}, we sent ${digest}`);
      return digest;
    });
  }

  /** Fetch and parse an image config blob (digest and size verified). */
  async getImageConfig(
    repo: RepoRef,
    desc: { digest: string; size?: number },
    opts: OpOptions = {},
  ): Promise<{ config: ImageConfig; bytes: Buffer }> {
    const bytes = await this.fetchBlob(repo, desc.digest, { ...opts, maxSize: 16 << 20 });
    if (desc.size !== undefined && bytes.length !== desc.size) {
      throw new DadiError(
        'ECORRUPT',
        `${repoName(repo)}@${desc.digest}: config is ${bytes.length} bytes, the manifest says ${desc.size}`,
      );
    }
    return { config: parseImageConfig(bytes, `config ${repoName(repo)}@${desc.digest}`), bytes };
  }

  // ---------------------------------------------------------------- blobs: read

  /** Size of a blob (HEAD), or undefined when the registry does not have it. */
  async statBlob(repo: RepoRef, digest: string, opts: OpOptions = {}): Promise<number | undefined> {
    const d = parseDigest(digest, repoName(repo));
    const what = `blob ${repoName(repo)}@${d}`;
    return this.transport.request(this.spec('HEAD', this.url(repo, `blobs/${d}`), repo, what, opts), async (res) => {
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw await statusError(res, what);
      const n = Number(header(res, 'content-length'));
      if (!Number.isSafeInteger(n) || n < 0)
        throw new TransientError(new DadiError('EIO', `${what}: HEAD gave no usable Content-Length`));
      return n;
    });
  }

  /** Size of a blob; ENOTFOUND when absent. */
  async blobSize(repo: RepoRef, digest: string, opts: OpOptions = {}): Promise<number> {
    const n = await this.statBlob(repo, digest, opts);
    if (n === undefined) throw new DadiError('ENOTFOUND', `${repoName(repo)}@${digest}: blob not found`);
    return n;
  }

  /**
   * Read `buf.length` bytes of a blob at `offset` with one range GET (retried on transient
   * failures). Returns the count, short only at the end of the blob. The 206 Content-Range must be
   * exactly what was asked; a 200 (server ignored Range) is accepted by skipping to `offset`;
   * a truncated body is retried; a 416 is ERANGE (its body is never read).
   */
  async readBlob(
    repo: RepoRef,
    digest: string,
    buf: Uint8Array,
    offset: number,
    opts: OpOptions = {},
  ): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new DadiError('ERANGE', `${repoName(repo)}@${digest}: bad offset ${offset}`);
    if (buf.length === 0) return 0;
    const d = parseDigest(digest, repoName(repo));
    const end = offset + buf.length - 1;
    const what = `blob ${repoName(repo)}@${d} range ${offset}-${end}`;
    const s = this.spec('GET', this.url(repo, `blobs/${d}`), repo, what, opts);
    s.headers = { range: `bytes=${offset}-${end}` };
    const n = await this.transport.request(s, async (res) => {
      if (res.status === 206) {
        const cr = parseContentRange(header(res, 'content-range'));
        if (!cr || cr.start !== offset || cr.end > end || (cr.end < end && cr.end + 1 !== cr.total)) {
          throw new TransientError(
            new DadiError(
              'EIO',
              `${what}: the server answered Content-Range ${JSON.stringify(header(res, 'content-range'))}`,
            ),
          );
        }
        const want = cr.end - cr.start + 1;
        const cl = header(res, 'content-length');
        if (cl !== undefined && Number(cl) !== want) {
          throw new TransientError(new DadiError('EIO', `${what}: Content-Length ${cl} disagrees with Content-Range`));
        }
        const got = await bodyInto(res, buf, 0, want, what);
        if (got !== want)
          throw new TransientError(new DadiError('EIO', `${what}: truncated body (${got} of ${want} bytes)`));
        return got;
      }
      if (res.status === 200) return this.sliceOfWhole(res, buf, offset, what);
      throw await statusError(res, what);
    });
    this.counters.rangeReads++;
    this.counters.rangeBytes += n;
    return n;
  }

  /** A 200 to a range request carries the whole blob: skip to `offset`, take `buf.length`. */
  private async sliceOfWhole(res: HttpResponse, buf: Uint8Array, offset: number, what: string): Promise<number> {
    this.counters.fullBodyFallbacks++;
    if (!this.warnedFullBody) {
      this.warnedFullBody = true;
      this.options.log?.('warn', `${what}: the server ignored the Range header and sent the whole blob`);
    }
    const clText = header(res, 'content-length');
    const total = clText === undefined ? undefined : Number(clText);
    const want = total === undefined ? buf.length : Math.max(0, Math.min(buf.length, total - offset));
    let pos = 0;
    let n = 0;
    for await (const c of res.body as AsyncIterable<Buffer>) {
      const from = Math.max(0, offset - pos);
      const take = Math.min(c.length - from, want - n);
      if (take > 0) {
        buf.set(c.subarray(from, from + take), n);
        n += take;
      }
      pos += c.length;
      if (n >= want) break;
    }
    discard(res);
    if (n !== want) {
      if (total === undefined && n < want) return n; // the stream ended: end of blob
      throw new TransientError(new DadiError('EIO', `${what}: truncated body (${n} of ${want} bytes)`));
    }
    return n;
  }

  /** GET a whole blob into memory, digest-verified (retried on mismatch). For configs and small blobs. */
  async fetchBlob(repo: RepoRef, digest: string, opts: OpOptions & { maxSize?: number } = {}): Promise<Buffer> {
    const d = parseDigest(digest, repoName(repo));
    const what = `blob ${repoName(repo)}@${d}`;
    const max = opts.maxSize ?? 64 << 20;
    const bytes = await this.transport.request(
      this.spec('GET', this.url(repo, `blobs/${d}`), repo, what, opts),
      async (res) => {
        if (res.status === 404) throw new DadiError('ENOTFOUND', `${repoName(repo)}@${d}: blob not found`);
        if (res.status !== 200) throw await statusError(res, what);
        const b = await readBody(res, max, what);
        const got = sha256Of(b);
        if (got !== d) throw new TransientError(new DadiError('ECORRUPT', `${what}: digest mismatch (got ${got})`));
        return b;
      },
    );
    this.counters.blobBytes += bytes.length;
    return bytes;
  }

  /**
   * Stream a whole blob. A broken connection resumes with a range request where it stopped; the
   * digest is checked at the end and a mismatch throws ECORRUPT from the iterator — so a consumer
   * must treat what it wrote as invalid until the iteration completes.
   */
  async *blobStream(repo: RepoRef, digest: string, opts: OpOptions = {}): AsyncGenerator<Buffer> {
    const d = parseDigest(digest, repoName(repo));
    const what = `blob ${repoName(repo)}@${d}`;
    const hasher = new Digester();
    let pos = 0;
    let total: number | undefined;
    let resumes = 0;
    const maxResumes = this.options.maxAttempts ?? 6;
    for (;;) {
      const s = this.spec('GET', this.url(repo, `blobs/${d}`), repo, what, {
        ...opts,
        deadline: opts.deadline ?? Number.POSITIVE_INFINITY,
      });
      s.keepBody = true;
      if (pos > 0) s.headers = { range: `bytes=${pos}-` };
      const res = await this.transport.request(s, async (r) => {
        if (r.status === 404) throw new DadiError('ENOTFOUND', `${repoName(repo)}@${d}: blob not found`);
        if (r.status === 416 && total !== undefined && pos === total) {
          discard(r);
          return undefined; // nothing left
        }
        if (r.status !== 200 && r.status !== 206) throw await statusError(r, what);
        return r;
      });
      if (!res) break;
      let skip = 0;
      if (res.status === 206) {
        const cr = parseContentRange(header(res, 'content-range'));
        if (!cr || cr.start !== pos) {
          discard(res);
          throw new DadiError('EIO', `${what}: resumed at a wrong offset (${header(res, 'content-range')})`);
        }
        total = cr.total;
      } else {
        skip = pos; // 200: the whole blob again
        const cl = Number(header(res, 'content-length'));
        if (Number.isSafeInteger(cl)) total = cl;
      }
      try {
        for await (const c0 of res.body as AsyncIterable<Buffer>) {
          let c = c0;
          if (skip > 0) {
            const k = Math.min(skip, c.length);
            skip -= k;
            c = c.subarray(k);
            if (c.length === 0) continue;
          }
          hasher.update(c);
          pos += c.length;
          this.counters.blobBytes += c.length;
          yield c;
        }
        if (total === undefined || pos >= total) break;
        throw new Error('body ended early');
      } catch (e) {
        if (e instanceof DadiError || ++resumes > maxResumes) {
          throw e instanceof DadiError
            ? e
            : new DadiError('EIO', `${what}: download failed at byte ${pos}: ${(e as Error).message}`, { cause: e });
        }
        this.options.log?.('debug', `${what}: resuming at byte ${pos} after: ${(e as Error).message}`);
      } finally {
        discard(res); // harmless once ended; closes the connection if the consumer stopped early
      }
    }
    if (total !== undefined && pos !== total) throw new DadiError('EIO', `${what}: got ${pos} bytes of ${total}`);
    const got = hasher.digest();
    if (got !== d) throw new DadiError('ECORRUPT', `${what}: digest mismatch after download (got ${got})`);
  }

  // ---------------------------------------------------------------- blobs: write

  /**
   * Mount a blob from another repository of the same registry. True when mounted; false when the
   * registry declined (it then opened an upload session, which is cancelled).
   */
  async mountBlob(repo: RepoRef, digest: string, fromRepository: string, opts: OpOptions = {}): Promise<boolean> {
    const r = await this.startUpload(repo, opts, parseDigest(digest, repoName(repo)), fromRepository);
    if (r.mounted) return true;
    await this.cancelUpload(repo, r.location, opts);
    return false;
  }

  /**
   * Push a blob unless the registry has it: HEAD, then (with `mountFrom`) a cross-repository
   * mount, then a monolithic PUT (≤ `uploadChunkBytes`) or chunked PATCHes + PUT `?digest=`.
   * The registry checks the digest (a mismatch is ECORRUPT). A failed upload restarts from scratch.
   */
  async pushBlob(
    repo: RepoRef,
    source: Uint8Array | BlockFile,
    opts: OpOptions & { digest?: string; mountFrom?: string; chunkBytes?: number } = {},
  ): Promise<PushedBlob> {
    const size = source instanceof Uint8Array ? source.length : source.size;
    const digest = opts.digest ? parseDigest(opts.digest, repoName(repo)) : await digestOf(source);
    const existing = await this.statBlob(repo, digest, opts);
    if (existing !== undefined) {
      if (existing !== size)
        throw new DadiError(
          'ECORRUPT',
          `${repoName(repo)}@${digest}: the registry has it with size ${existing}, ours is ${size}`,
        );
      return { digest, size, how: 'exists' };
    }
    const what = `upload of ${repoName(repo)}@${digest}`;
    const chunk = opts.chunkBytes ?? this.options.uploadChunkBytes ?? 32 << 20;
    const restarts = 3;
    for (let attempt = 1; ; attempt++) {
      const start = await this.startUpload(repo, opts, opts.mountFrom ? digest : undefined, opts.mountFrom);
      if (start.mounted) return { digest, size, how: 'mounted' };
      let location = start.location;
      try {
        if (size <= chunk) {
          await this.finishUpload(repo, location, digest, await sliceOf(source, 0, size), opts, what);
        } else {
          for (let off = 0; off < size; off += chunk) {
            const part = await sliceOf(source, off, Math.min(chunk, size - off));
            location = await this.patchUpload(repo, location, part, off, opts, what);
          }
          await this.finishUpload(repo, location, digest, undefined, opts, what);
        }
        return { digest, size, how: 'uploaded' };
      } catch (e) {
        const err = e as DadiError;
        // The last PUT may have landed even though its answer was lost.
        if ((await this.statBlob(repo, digest, opts).catch(() => undefined)) === size)
          return { digest, size, how: 'uploaded' };
        if (attempt >= restarts || !(err instanceof DadiError) || (err.code !== 'EIO' && err.code !== 'ETIMEDOUT'))
          throw err;
        this.options.log?.('debug', `${what}: restarting after: ${err.message}`);
      }
    }
  }

  /**
   * A Sink that uploads what is written to it (chunked PATCHes, PUT with the computed digest at
   * `end()`); `result` holds the digest and size afterwards. No restart on failure: the caller
   * re-runs its producer.
   */
  async createBlobUpload(repo: RepoRef, opts: OpOptions & { chunkBytes?: number } = {}): Promise<BlobUploadSink> {
    const start = await this.startUpload(repo, opts);
    return new BlobUploadSink(
      this,
      repo,
      start.location,
      opts.chunkBytes ?? this.options.uploadChunkBytes ?? 32 << 20,
      opts,
    );
  }

  /** POST an upload session (or a mount). Returns the session URL, or mounted. */
  private async startUpload(
    repo: RepoRef,
    opts: OpOptions,
    mountDigest?: Digest,
    from?: string,
  ): Promise<{ mounted: boolean; location: string }> {
    let url = this.url(repo, 'blobs/uploads/');
    if (mountDigest && from) url += `?${new URLSearchParams({ mount: mountDigest, from }).toString()}`;
    const what = mountDigest
      ? `mount of ${mountDigest} from ${from} into ${repoName(repo)}`
      : `upload to ${repoName(repo)}`;
    const s = this.spec('POST', url, repo, what, opts, true);
    if (mountDigest && from)
      s.auth = {
        registry: repo.registry,
        scopes: [repositoryScope(repo.repository, 'pull,push'), repositoryScope(from, 'pull')],
      };
    s.headers = { 'content-length': '0' };
    return this.transport.request(s, async (res) => {
      if (res.status === 201 && mountDigest) return { mounted: true, location: '' };
      if (res.status !== 202) throw await statusError(res, what);
      const loc = header(res, 'location');
      if (!loc) throw new DadiError('EIO', `${what}: no Location for the upload session`);
      return { mounted: false, location: new URL(loc, res.url).toString() };
    });
  }

  /** @internal PATCH one chunk at `offset`; returns the next session URL. */
  async patchUpload(
    repo: RepoRef,
    location: string,
    data: Uint8Array,
    offset: number,
    opts: OpOptions,
    what: string,
  ): Promise<string> {
    const s = this.spec('PATCH', location, repo, `${what} (bytes ${offset}-${offset + data.length - 1})`, opts, true);
    s.headers = {
      'content-type': 'application/octet-stream',
      'content-range': `${offset}-${offset + data.length - 1}`,
      'content-length': String(data.length),
    };
    s.body = data;
    s.retry = false; // a repeated PATCH would append twice; the caller restarts instead
    return this.transport.request(s, async (res) => {
      if (res.status !== 202) throw await statusError(res, s.what);
      const range = header(res, 'range');
      const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range) : null;
      if (m && Number(m[1]) !== offset + data.length - 1) {
        throw new DadiError(
          'EIO',
          `${what}: the registry holds bytes ${range}, expected 0-${offset + data.length - 1}`,
        );
      }
      this.counters.bytesUploaded += data.length;
      const loc = header(res, 'location');
      return loc ? new URL(loc, res.url).toString() : location;
    });
  }

  /** @internal PUT `?digest=` (with the last bytes, if any) to complete an upload. */
  async finishUpload(
    repo: RepoRef,
    location: string,
    digest: Digest,
    last: Uint8Array | undefined,
    opts: OpOptions,
    what: string,
  ): Promise<void> {
    const u = new URL(location);
    u.searchParams.set('digest', digest);
    const s = this.spec('PUT', u.toString(), repo, what, opts, true);
    s.headers = { 'content-type': 'application/octet-stream', 'content-length': String(last?.length ?? 0) };
    if (last) s.body = last;
    await this.transport.request(s, async (res) => {
      if (res.status !== 201) throw await statusError(res, what);
      const claimed = header(res, 'docker-content-digest');
      if (claimed && claimed !== digest) throw new DadiError('ECORRUPT', `${what}: the registry stored ${claimed}`);
    });
    if (last) this.counters.bytesUploaded += last.length;
  }

  /** @internal DELETE an upload session (best effort). */
  async cancelUpload(repo: RepoRef, location: string, opts: OpOptions): Promise<void> {
    const s = this.spec('DELETE', location, repo, `cancel upload to ${repoName(repo)}`, opts, true);
    s.retry = false;
    await this.transport.request(s, async () => {}).catch(() => {});
  }
}

async function digestOf(source: Uint8Array | BlockFile): Promise<Digest> {
  if (source instanceof Uint8Array) return sha256Of(source);
  const h = new Digester();
  const buf = Buffer.allocUnsafe(Math.min(4 << 20, Math.max(1, source.size)));
  for (let off = 0; off < source.size; ) {
    const n = await source.read(buf, off);
    if (n <= 0) throw new DadiError('EIO', `${source.name}: short read at ${off}`);
    h.update(buf.subarray(0, n));
    off += n;
  }
  return h.digest();
}

async function sliceOf(source: Uint8Array | BlockFile, offset: number, length: number): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source.subarray(offset, offset + length);
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = await source.read(buf.subarray(done), offset + done);
    if (n <= 0) throw new DadiError('EIO', `${source.name}: short read at ${offset + done}`);
    done += n;
  }
  return buf;
}

/** Upload as a Sink: see `RegistryClient.createBlobUpload`. */
export class BlobUploadSink implements Sink {
  readonly name: string;
  private pos = 0;
  private sent = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private readonly hasher = new Digester();
  private done = false;
  /** Digest and size, set by `end()`. */
  result: { digest: Digest; size: number } | undefined;

  constructor(
    private readonly client: RegistryClient,
    private readonly repo: RepoRef,
    private location: string,
    private readonly chunkBytes: number,
    private readonly opts: OpOptions,
  ) {
    this.name = `upload to ${repoName(repo)}`;
  }

  get position(): number {
    return this.pos;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new DadiError('EINVAL', `${this.name}: write after end`);
    if (chunk.length === 0) return;
    this.hasher.update(chunk);
    this.pending.push(Uint8Array.from(chunk));
    this.pendingBytes += chunk.length;
    this.pos += chunk.length;
    if (this.pendingBytes >= this.chunkBytes) {
      const data = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      this.location = await this.client.patchUpload(this.repo, this.location, data, this.sent, this.opts, this.name);
      this.sent += data.length;
    }
  }

  async end(): Promise<void> {
    if (this.done) return;
    this.done = true;
    const digest = this.hasher.digest();
    const last = this.pendingBytes > 0 ? Buffer.concat(this.pending, this.pendingBytes) : undefined;
    this.pending = [];
    await this.client.finishUpload(this.repo, this.location, digest, last, this.opts, this.name);
    this.result = { digest, size: this.pos };
  }

  /** Abandon the upload (DELETE the session). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.client.cancelUpload(this.repo, this.location, this.opts);
  }
}
