// The upload role of the distribution client: push a blob (unless present; by cross-repository
// mount when possible; monolithic or chunked), mount one, or upload whatever a producer writes
// into a Sink. Upload sessions (POST, PATCH, PUT ?digest=, DELETE) stay inside this module.

import type { BlockFile } from '../blockfile/blockfile.js';
import type { Sink } from '../blockfile/sink.js';
import { DadiError } from '../errors.js';
import { type Digest, Digester, parseDigest, sha256Of } from '../oci/digest.js';
import { repositoryScope } from './auth.js';
import type { BlobReads } from './blob-reads.js';
import { type OpOptions, type RegistryHttp, type RepoRef, repoName, repoRequest, repoUrl } from './repo-request.js';
import { header, statusError } from './transport.js';

export interface BlobUploadOptions {
  /** Upload chunk size; blobs up to this size go in one PUT (default 32 MiB). */
  uploadChunkBytes?: number;
  log?: (level: 'debug' | 'warn', msg: string) => void;
}

export interface PushedBlob {
  digest: Digest;
  size: number;
  /** `exists`: the registry had it (HEAD); `mounted`: cross-repository mount; `uploaded`. */
  how: 'exists' | 'mounted' | 'uploaded';
}

/** An upload as a Sink: bytes written go up in chunks; `end()` completes it, `abort()` drops it. */
export interface BlobUploadSink extends Sink {
  /** Digest and size, set by `end()`. */
  readonly result: { digest: Digest; size: number } | undefined;
  /** Abandon the upload (DELETE the session). */
  abort(): Promise<void>;
}

const DEFAULT_CHUNK_BYTES = 32 << 20;
/** Whole-upload attempts of `push` (a failed session cannot be resumed portably). */
const PUSH_RESTARTS = 3;

export class BlobUploads {
  readonly stats = { bytesUploaded: 0 };

  constructor(
    private readonly http: RegistryHttp,
    private readonly reads: Pick<BlobReads, 'stat'>,
    private readonly options: BlobUploadOptions = {},
  ) {}

  /**
   * Mount a blob from another repository of the same registry. True when mounted; false when the
   * registry declined (it then opened an upload session, which is cancelled).
   */
  async mount(repo: RepoRef, digest: string, fromRepository: string, opts: OpOptions = {}): Promise<boolean> {
    const r = await this.start(repo, opts, { digest: parseDigest(digest, repoName(repo)), from: fromRepository });
    if (r === 'mounted') return true;
    await r.cancel();
    return false;
  }

  /**
   * Push a blob unless the registry has it: HEAD, then (with `mountFrom`) a cross-repository
   * mount, then a monolithic PUT (≤ `uploadChunkBytes`) or chunked PATCHes + PUT `?digest=`.
   * The registry checks the digest (a mismatch is ECORRUPT). A failed upload restarts from scratch.
   */
  async push(
    repo: RepoRef,
    source: Uint8Array | BlockFile,
    opts: OpOptions & { digest?: string; mountFrom?: string; chunkBytes?: number } = {},
  ): Promise<PushedBlob> {
    const size = source instanceof Uint8Array ? source.length : source.size;
    const digest = opts.digest ? parseDigest(opts.digest, repoName(repo)) : await digestOf(source);
    const existing = await this.reads.stat(repo, digest, opts);
    if (existing !== undefined) {
      if (existing !== size)
        throw new DadiError(
          'ECORRUPT',
          `${repoName(repo)}@${digest}: the registry has it with size ${existing}, ours is ${size}`,
        );
      return { digest, size, how: 'exists' };
    }
    const what = `upload of ${repoName(repo)}@${digest}`;
    const chunk = opts.chunkBytes ?? this.options.uploadChunkBytes ?? DEFAULT_CHUNK_BYTES;
    for (let attempt = 1; ; attempt++) {
      const session = await this.start(repo, opts, opts.mountFrom ? { digest, from: opts.mountFrom } : undefined);
      if (session === 'mounted') return { digest, size, how: 'mounted' };
      try {
        if (size <= chunk) {
          await session.finish(digest, await sliceOf(source, 0, size), what);
        } else {
          for (let off = 0; off < size; off += chunk) {
            await session.patch(await sliceOf(source, off, Math.min(chunk, size - off)), off, what);
          }
          await session.finish(digest, undefined, what);
        }
        return { digest, size, how: 'uploaded' };
      } catch (e) {
        const err = e as DadiError;
        // The last PUT may have landed even though its answer was lost.
        if ((await this.reads.stat(repo, digest, opts).catch(() => undefined)) === size)
          return { digest, size, how: 'uploaded' };
        if (attempt >= PUSH_RESTARTS || !(err instanceof DadiError) || (err.code !== 'EIO' && err.code !== 'ETIMEDOUT'))
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
  async createSink(repo: RepoRef, opts: OpOptions & { chunkBytes?: number } = {}): Promise<BlobUploadSink> {
    return new UploadSink(
      await this.start(repo, opts),
      opts.chunkBytes ?? this.options.uploadChunkBytes ?? DEFAULT_CHUNK_BYTES,
    );
  }

  /** POST an upload session, or a cross-repository mount (`'mounted'` when the registry did it). */
  private start(repo: RepoRef, opts: OpOptions): Promise<UploadSession>;
  private start(
    repo: RepoRef,
    opts: OpOptions,
    mount?: { digest: Digest; from: string },
  ): Promise<UploadSession | 'mounted'>;
  private async start(
    repo: RepoRef,
    opts: OpOptions,
    mount?: { digest: Digest; from: string },
  ): Promise<UploadSession | 'mounted'> {
    let url = repoUrl(this.http, repo, 'blobs/uploads/');
    if (mount) url += `?${new URLSearchParams({ mount: mount.digest, from: mount.from }).toString()}`;
    const what = mount
      ? `mount of ${mount.digest} from ${mount.from} into ${repoName(repo)}`
      : `upload to ${repoName(repo)}`;
    const s = repoRequest('POST', url, repo, what, opts, true);
    if (mount)
      s.auth = {
        registry: repo.registry,
        scopes: [repositoryScope(repo.repository, 'pull,push'), repositoryScope(mount.from, 'pull')],
      };
    s.headers = { 'content-length': '0' };
    return this.http.request(s, async (res) => {
      if (res.status === 201 && mount) return 'mounted' as const;
      if (res.status !== 202) throw await statusError(res, what);
      const loc = header(res, 'location');
      if (!loc) throw new DadiError('EIO', `${what}: no Location for the upload session`);
      return new UploadSession(this.http, repo, new URL(loc, res.url).toString(), opts, this.stats);
    });
  }
}

/** One open upload session: PATCH chunks in order, then PUT `?digest=`, or DELETE it. */
class UploadSession {
  constructor(
    private readonly http: RegistryHttp,
    private readonly repo: RepoRef,
    /** The session URL; the registry may move it with every PATCH. */
    private location: string,
    private readonly opts: OpOptions,
    private readonly stats: { bytesUploaded: number },
  ) {}

  get name(): string {
    return `upload to ${repoName(this.repo)}`;
  }

  /** PATCH one chunk at `offset`. */
  async patch(data: Uint8Array, offset: number, what: string): Promise<void> {
    const last = offset + data.length - 1;
    const s = repoRequest('PATCH', this.location, this.repo, `${what} (bytes ${offset}-${last})`, this.opts, true);
    s.headers = {
      'content-type': 'application/octet-stream',
      'content-range': `${offset}-${last}`,
      'content-length': String(data.length),
    };
    s.body = data;
    s.retry = false; // a repeated PATCH would append twice; the caller restarts instead
    this.location = await this.http.request(s, async (res) => {
      if (res.status !== 202) throw await statusError(res, s.what);
      const range = header(res, 'range');
      const m = range ? /^(?:bytes=)?0-(\d+)$/.exec(range) : null;
      if (m && Number(m[1]) !== last) {
        throw new DadiError('EIO', `${what}: the registry holds bytes ${range}, expected 0-${last}`);
      }
      this.stats.bytesUploaded += data.length;
      const loc = header(res, 'location');
      return loc ? new URL(loc, res.url).toString() : this.location;
    });
  }

  /** PUT `?digest=` (with the last bytes, if any) to complete the upload. */
  async finish(digest: Digest, last: Uint8Array | undefined, what: string): Promise<void> {
    const u = new URL(this.location);
    u.searchParams.set('digest', digest);
    const s = repoRequest('PUT', u.toString(), this.repo, what, this.opts, true);
    s.headers = { 'content-type': 'application/octet-stream', 'content-length': String(last?.length ?? 0) };
    if (last) s.body = last;
    await this.http.request(s, async (res) => {
      if (res.status !== 201) throw await statusError(res, what);
      const claimed = header(res, 'docker-content-digest');
      if (claimed && claimed !== digest) throw new DadiError('ECORRUPT', `${what}: the registry stored ${claimed}`);
    });
    if (last) this.stats.bytesUploaded += last.length;
  }

  /** DELETE the session (best effort). */
  async cancel(): Promise<void> {
    const s = repoRequest(
      'DELETE',
      this.location,
      this.repo,
      `cancel upload to ${repoName(this.repo)}`,
      this.opts,
      true,
    );
    s.retry = false;
    await this.http.request(s, async () => {}).catch(() => {});
  }
}

class UploadSink implements BlobUploadSink {
  readonly name: string;
  private pos = 0;
  private sent = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private readonly hasher = new Digester();
  private done = false;
  result: { digest: Digest; size: number } | undefined;

  constructor(
    private readonly session: UploadSession,
    private readonly chunkBytes: number,
  ) {
    this.name = session.name;
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
      await this.session.patch(data, this.sent, this.name);
      this.sent += data.length;
    }
  }

  async end(): Promise<void> {
    if (this.done) return;
    this.done = true;
    const digest = this.hasher.digest();
    const last = this.pendingBytes > 0 ? Buffer.concat(this.pending, this.pendingBytes) : undefined;
    this.pending = [];
    await this.session.finish(digest, last, this.name);
    this.result = { digest, size: this.pos };
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.session.cancel();
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
