// The OCI distribution client, one object for callers that do a bit of everything: it owns the
// transport (HTTP, auth, retries: transport.ts) and puts the three roles behind one face —
// manifests (manifests.ts), blob reads (blob-reads.ts) and uploads (blob-uploads.ts), split the
// way containerd's remotes/docker splits resolver, fetcher and pusher. A blob as a BlockFile is
// remote-blob.ts.

import type { BlockFile } from '../blockfile/blockfile.js';
import type { Digest } from '../oci/digest.js';
import type { ImageConfig, Platform } from '../oci/manifest.js';
import { type BlobReadOptions, type BlobReadStats, BlobReads } from './blob-reads.js';
import { type BlobUploadSink, BlobUploads, type PushedBlob } from './blob-uploads.js';
import { type CredentialProvider, type Credentials, defaultCredentials, staticCredentials } from './credentials.js';
import { type FetchedManifest, Manifests, type ResolvedImage } from './manifests.js';
import { P2P_PROXY_ENV, parseP2pProxy } from './p2p-proxy.js';
import type { Reference } from './reference.js';
import { type OpOptions, type RepoRef, withOpOptions } from './repo-request.js';
import { type RequestSpec, statusError, Transport, type TransportOptions, type TransportStats } from './transport.js';

export interface RegistryClientOptions extends TransportOptions, Pick<BlobReadOptions, 'onRangeRead'> {
  /** Credentials: a fixed pair, a lookup function, or (default) flags/env/docker config via `defaultCredentials()`. */
  credentials?: Credentials | CredentialProvider;
  /** Platform chosen from indexes (default: this machine's). */
  platform?: Platform;
  /** Largest manifest accepted (default 4 MiB). */
  maxManifestBytes?: number;
  /** Upload chunk size; blobs up to this size go in one PUT (default 32 MiB). */
  uploadChunkBytes?: number;
}

export interface RegistryStats extends TransportStats, BlobReadStats {
  tokenRequests: number;
  bytesUploaded: number;
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
  readonly manifests: Manifests;
  readonly blobs: BlobReads;
  readonly uploads: BlobUploads;

  constructor(readonly options: RegistryClientOptions = {}) {
    const c = options.credentials;
    const provider: CredentialProvider = typeof c === 'function' ? c : c ? staticCredentials(c) : defaultCredentials();
    // The P2P proxy: the option, else $DADI_P2P_PROXY ('' for none), checked here to name its source.
    const p2pProxy =
      options.p2pProxy !== undefined
        ? parseP2pProxy(options.p2pProxy, 'P2P proxy setting')
        : parseP2pProxy(process.env[P2P_PROXY_ENV], P2P_PROXY_ENV);
    this.transport = new Transport({ ...options, p2pProxy }, provider);
    this.manifests = new Manifests(this.transport, options);
    this.blobs = new BlobReads(this.transport, options);
    this.uploads = new BlobUploads(this.transport, this.blobs, options);
  }

  get stats(): RegistryStats {
    return {
      ...this.transport.stats,
      tokenRequests: this.transport.tokenRequests,
      ...this.blobs.stats,
      ...this.uploads.stats,
    };
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /**
   * Check that the registry answers the v2 API with the configured credentials (what `dadi login`
   * verifies). Throws EAUTH naming the host when credentials are missing or wrong.
   */
  async ping(registry: string, opts: OpOptions = {}): Promise<void> {
    const s: RequestSpec = withOpOptions(
      {
        method: 'GET',
        url: `${this.transport.origin(registry)}/v2/`,
        what: `registry ${registry}`,
        auth: { registry, scopes: [] },
      },
      opts,
    );
    await this.transport.request(s, async (res) => {
      if (res.status !== 200) throw await statusError(res, s.what);
    });
  }

  // ---------------------------------------------------------------- manifests (manifests.ts)

  listTags(repo: RepoRef, opts?: OpOptions): Promise<string[]> {
    return this.manifests.listTags(repo, opts);
  }

  getManifest(ref: Reference, opts?: OpOptions & { accept?: readonly string[] }): Promise<FetchedManifest> {
    return this.manifests.get(ref, opts);
  }

  headManifest(
    ref: Reference,
    opts?: OpOptions,
  ): Promise<{ digest: Digest; size: number; mediaType: string } | undefined> {
    return this.manifests.head(ref, opts);
  }

  resolveImage(ref: Reference, opts?: OpOptions & { platform?: Platform }): Promise<ResolvedImage> {
    return this.manifests.resolveImage(ref, opts);
  }

  putManifest(ref: Reference, bytes: Uint8Array, mediaType: string, opts?: OpOptions): Promise<Digest> {
    return this.manifests.put(ref, bytes, mediaType, opts);
  }

  // ---------------------------------------------------------------- blob reads (blob-reads.ts)

  getImageConfig(
    repo: RepoRef,
    desc: { digest: string; size?: number },
    opts?: OpOptions,
  ): Promise<{ config: ImageConfig; bytes: Buffer }> {
    return this.blobs.imageConfig(repo, desc, opts);
  }

  statBlob(repo: RepoRef, digest: string, opts?: OpOptions): Promise<number | undefined> {
    return this.blobs.stat(repo, digest, opts);
  }

  blobSize(repo: RepoRef, digest: string, opts?: OpOptions): Promise<number> {
    return this.blobs.size(repo, digest, opts);
  }

  readBlob(repo: RepoRef, digest: string, buf: Uint8Array, offset: number, opts?: OpOptions): Promise<number> {
    return this.blobs.read(repo, digest, buf, offset, opts);
  }

  fetchBlob(repo: RepoRef, digest: string, opts?: OpOptions & { maxSize?: number }): Promise<Buffer> {
    return this.blobs.fetch(repo, digest, opts);
  }

  blobStream(repo: RepoRef, digest: string, opts?: OpOptions): AsyncGenerator<Buffer> {
    return this.blobs.stream(repo, digest, opts);
  }

  // ---------------------------------------------------------------- uploads (blob-uploads.ts)

  mountBlob(repo: RepoRef, digest: string, fromRepository: string, opts?: OpOptions): Promise<boolean> {
    return this.uploads.mount(repo, digest, fromRepository, opts);
  }

  pushBlob(
    repo: RepoRef,
    source: Uint8Array | BlockFile,
    opts?: OpOptions & { digest?: string; mountFrom?: string; chunkBytes?: number },
  ): Promise<PushedBlob> {
    return this.uploads.push(repo, source, opts);
  }

  createBlobUpload(repo: RepoRef, opts?: OpOptions & { chunkBytes?: number }): Promise<BlobUploadSink> {
    return this.uploads.createSink(repo, opts);
  }
}
