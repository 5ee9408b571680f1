// The blob-read role of the distribution client: HEAD for sizes, ranged GETs into a caller's
// buffer (the lazy read path), verified whole GETs (configs) and verified, resumable streams
// (convert's layer downloads). The GETs may go through a configured P2P proxy (transport.ts). A blob as a BlockFile is remote-blob.ts on top of this.

import { DadiError } from '../errors.js';
import { Digester, parseDigest, sha256Of } from '../oci/digest.js';
import { type ImageConfig, parseImageConfig } from '../oci/manifest.js';
import { type OpOptions, type RegistryHttp, type RepoRef, repoName, repoRequest, repoUrl } from './repo-request.js';
import { discard, type HttpResponse, header, readBody, statusError, TransientError } from './transport.js';

export interface BlobReadOptions {
  /** Resumes of one stream after broken connections (default 6). */
  maxAttempts?: number;
  log?: (level: 'debug' | 'warn', msg: string) => void;
  /** Told of each ranged read that completed: its bytes and its time in seconds, retries included (metrics). */
  onRangeRead?: (bytes: number, seconds: number) => void;
}

export interface BlobReadStats {
  /** Ranged blob reads completed, and the bytes they delivered. */
  rangeReads: number;
  rangeBytes: number;
  /** Bytes of whole-blob GETs and streams. */
  blobBytes: number;
  /** Range requests the server answered with the whole blob (200): correct, but wasteful. */
  fullBodyFallbacks: number;
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

export class BlobReads {
  readonly stats: BlobReadStats = { rangeReads: 0, rangeBytes: 0, blobBytes: 0, fullBodyFallbacks: 0 };
  private warnedFullBody = false;

  constructor(
    private readonly http: RegistryHttp,
    private readonly options: BlobReadOptions = {},
  ) {}

  /** Size of a blob (HEAD), or undefined when the registry does not have it. */
  async stat(repo: RepoRef, digest: string, opts: OpOptions = {}): Promise<number | undefined> {
    const d = parseDigest(digest, repoName(repo));
    const what = `blob ${repoName(repo)}@${d}`;
    return this.http.request(
      repoRequest('HEAD', repoUrl(this.http, repo, `blobs/${d}`), repo, what, opts),
      async (res) => {
        if (res.status === 404) return undefined;
        if (res.status !== 200) throw await statusError(res, what);
        const n = Number(header(res, 'content-length'));
        if (!Number.isSafeInteger(n) || n < 0)
          throw new TransientError(new DadiError('EIO', `${what}: HEAD gave no usable Content-Length`));
        return n;
      },
    );
  }

  /** Size of a blob; ENOTFOUND when absent. */
  async size(repo: RepoRef, digest: string, opts: OpOptions = {}): Promise<number> {
    const n = await this.stat(repo, digest, opts);
    if (n === undefined) throw new DadiError('ENOTFOUND', `${repoName(repo)}@${digest}: blob not found`);
    return n;
  }

  /**
   * Read `buf.length` bytes of a blob at `offset` with one range GET (retried on transient
   * failures). Returns the count, short only at the end of the blob. The 206 Content-Range must be
   * exactly what was asked; a 200 (server ignored Range) is accepted by skipping to `offset`;
   * a truncated body is retried; a 416 is ERANGE (its body is never read).
   */
  async read(repo: RepoRef, digest: string, buf: Uint8Array, offset: number, opts: OpOptions = {}): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new DadiError('ERANGE', `${repoName(repo)}@${digest}: bad offset ${offset}`);
    if (buf.length === 0) return 0;
    const d = parseDigest(digest, repoName(repo));
    const end = offset + buf.length - 1;
    const what = `blob ${repoName(repo)}@${d} range ${offset}-${end}`;
    const s = repoRequest('GET', repoUrl(this.http, repo, `blobs/${d}`), repo, what, opts);
    s.headers = { range: `bytes=${offset}-${end}` };
    s.viaP2pProxy = true;
    const started = performance.now();
    const n = await this.http.request(s, async (res) => {
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
    this.stats.rangeReads++;
    this.stats.rangeBytes += n;
    this.options.onRangeRead?.(n, (performance.now() - started) / 1000);
    return n;
  }

  /** A 200 to a range request carries the whole blob: skip to `offset`, take `buf.length`. */
  private async sliceOfWhole(res: HttpResponse, buf: Uint8Array, offset: number, what: string): Promise<number> {
    this.stats.fullBodyFallbacks++;
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
  async fetch(repo: RepoRef, digest: string, opts: OpOptions & { maxSize?: number } = {}): Promise<Buffer> {
    const d = parseDigest(digest, repoName(repo));
    const what = `blob ${repoName(repo)}@${d}`;
    const max = opts.maxSize ?? 64 << 20;
    const bytes = await this.http.request(
      { ...repoRequest('GET', repoUrl(this.http, repo, `blobs/${d}`), repo, what, opts), viaP2pProxy: true },
      async (res) => {
        if (res.status === 404) throw new DadiError('ENOTFOUND', `${repoName(repo)}@${d}: blob not found`);
        if (res.status !== 200) throw await statusError(res, what);
        const b = await readBody(res, max, what);
        const got = sha256Of(b);
        if (got !== d) throw new TransientError(new DadiError('ECORRUPT', `${what}: digest mismatch (got ${got})`));
        return b;
      },
    );
    this.stats.blobBytes += bytes.length;
    return bytes;
  }

  /** Fetch and parse an image config blob (digest and size verified). */
  async imageConfig(
    repo: RepoRef,
    desc: { digest: string; size?: number },
    opts: OpOptions = {},
  ): Promise<{ config: ImageConfig; bytes: Buffer }> {
    const bytes = await this.fetch(repo, desc.digest, { ...opts, maxSize: 16 << 20 });
    if (desc.size !== undefined && bytes.length !== desc.size) {
      throw new DadiError(
        'ECORRUPT',
        `${repoName(repo)}@${desc.digest}: config is ${bytes.length} bytes, the manifest says ${desc.size}`,
      );
    }
    return { config: parseImageConfig(bytes, `config ${repoName(repo)}@${desc.digest}`), bytes };
  }

  /**
   * Stream a whole blob. A broken connection resumes with a range request where it stopped; the
   * digest is checked at the end and a mismatch throws ECORRUPT from the iterator — so a consumer
   * must treat what it wrote as invalid until the iteration completes.
   */
  async *stream(repo: RepoRef, digest: string, opts: OpOptions = {}): AsyncGenerator<Buffer> {
    const d = parseDigest(digest, repoName(repo));
    const what = `blob ${repoName(repo)}@${d}`;
    const url = repoUrl(this.http, repo, `blobs/${d}`);
    const hasher = new Digester();
    let pos = 0;
    let total: number | undefined;
    let resumes = 0;
    const maxResumes = this.options.maxAttempts ?? 6;
    for (;;) {
      const s = repoRequest('GET', url, repo, what, { ...opts, deadline: opts.deadline ?? Number.POSITIVE_INFINITY });
      s.keepBody = true;
      s.viaP2pProxy = true;
      if (pos > 0) s.headers = { range: `bytes=${pos}-` };
      const res = await this.http.request(s, async (r) => {
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
          this.stats.blobBytes += c.length;
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
}
