// The manifest role of the distribution client: GET/HEAD/PUT manifests and indexes, walk indexes
// to one platform's image manifest, list a repository's tags. Blob reads are in blob-reads.ts,
// uploads in blob-uploads.ts; RegistryClient (client.ts) puts the three behind one object.

import { DadiError } from '../errors.js';
import { type Digest, isDigest, sha256Of } from '../oci/digest.js';
import { type ImageManifest, type ParsedManifest, type Platform, parseManifest } from '../oci/manifest.js';
import { ACCEPT_MANIFEST } from '../oci/media-types.js';
import { formatPlatform, hostPlatform, selectPlatform } from '../oci/platform.js';
import { formatReference, manifestTarget, type Reference } from './reference.js';
import { type OpOptions, type RegistryHttp, type RepoRef, repoName, repoRequest, repoUrl } from './repo-request.js';
import { header, type RequestSpec, readBody, statusError, TransientError } from './transport.js';

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

export interface ManifestOptions {
  /** Platform chosen from indexes (default: this machine's). */
  platform?: Platform;
  /** Largest manifest accepted (default 4 MiB). */
  maxManifestBytes?: number;
}

/** Indexes inside indexes are legal; this deep is not sensible. */
const MAX_INDEX_DEPTH = 4;
/** Tag list pages followed at most. */
const MAX_TAG_PAGES = 1000;

export class Manifests {
  constructor(
    private readonly http: RegistryHttp,
    private readonly options: ManifestOptions = {},
  ) {}

  /** A GET or HEAD of the ref's manifest, accepting `accept` (default: every manifest and index type). */
  private request(method: 'GET' | 'HEAD', ref: Reference, opts: OpOptions, accept = ACCEPT_MANIFEST): RequestSpec {
    const url = repoUrl(this.http, ref, `manifests/${manifestTarget(ref)}`);
    const s = repoRequest(method, url, ref, `manifest ${formatReference(ref)}`, opts);
    s.headers = { accept: accept.join(', ') };
    return s;
  }

  /**
   * Fetch a manifest or index by the ref's digest (verified) or tag. A Docker-Content-Digest
   * header that disagrees with the bytes is an error too.
   */
  async get(ref: Reference, opts: OpOptions & { accept?: readonly string[] } = {}): Promise<FetchedManifest> {
    const what = formatReference(ref);
    const s = this.request('GET', ref, opts, opts.accept);
    const max = this.options.maxManifestBytes ?? 4 << 20;
    return this.http.request(s, async (res) => {
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
  async head(
    ref: Reference,
    opts: OpOptions = {},
  ): Promise<{ digest: Digest; size: number; mediaType: string } | undefined> {
    const what = formatReference(ref);
    const s = this.request('HEAD', ref, opts);
    const head = await this.http.request(s, async (res) => {
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
    const m = await this.get(ref, opts);
    return { digest: m.digest, size: m.bytes.length, mediaType: m.mediaType };
  }

  /**
   * Resolve a ref to one image manifest: indexes (nested too) are walked to the entry for
   * `platform` (default: the configured one, else this machine's).
   */
  async resolveImage(ref: Reference, opts: OpOptions & { platform?: Platform } = {}): Promise<ResolvedImage> {
    const want = opts.platform ?? this.options.platform ?? hostPlatform();
    const indexes: FetchedManifest[] = [];
    let m = await this.get(ref, opts);
    for (let depth = 0; m.parsed.kind === 'index'; depth++) {
      if (depth >= MAX_INDEX_DEPTH) throw new DadiError('EFORMAT', `${formatReference(ref)}: indexes nested too deep`);
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
      m = await this.get(next, opts);
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
  async put(ref: Reference, bytes: Uint8Array, mediaType: string, opts: OpOptions = {}): Promise<Digest> {
    const digest = sha256Of(bytes);
    if (ref.digest && ref.digest !== digest) {
      throw new DadiError(
        'ECORRUPT',
        `${formatReference(ref)}: manifest bytes hash to ${digest}, not the digest given`,
      );
    }
    const target = ref.digest ?? ref.tag ?? digest;
    const what = `manifest ${formatReference(ref)}`;
    const s = repoRequest('PUT', repoUrl(this.http, ref, `manifests/${target}`), ref, what, opts, true);
    s.headers = { 'content-type': mediaType };
    s.body = bytes;
    return this.http.request(s, async (res) => {
      if (res.status !== 201 && res.status !== 200) throw await statusError(res, what);
      const claimed = header(res, 'docker-content-digest');
      if (claimed && claimed !== digest)
        throw new DadiError('ECORRUPT', `${what}: the registry stored ${claimed}, we sent ${digest}`);
      return digest;
    });
  }

  /** Tags of a repository (follows `Link` pagination). */
  async listTags(repo: RepoRef, opts: OpOptions = {}): Promise<string[]> {
    const tags: string[] = [];
    const what = `tags of ${repoName(repo)}`;
    let url: string | undefined = repoUrl(this.http, repo, 'tags/list');
    for (let page = 0; url && page < MAX_TAG_PAGES; page++) {
      const current: string = url;
      url = await this.http.request(repoRequest('GET', current, repo, what, opts), async (res) => {
        if (res.status === 404) throw new DadiError('ENOTFOUND', `${repoName(repo)}: repository not found`);
        if (res.status !== 200) throw await statusError(res, what);
        const j = JSON.parse((await readBody(res, 16 << 20, 'tags')).toString('utf8')) as { tags?: string[] | null };
        tags.push(...(j.tags ?? []));
        const link = header(res, 'link');
        const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
        return m ? new URL(m[1]!, current).toString() : undefined;
      });
    }
    return tags;
  }
}
