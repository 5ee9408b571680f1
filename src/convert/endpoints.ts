// Image sources and targets for convert: `oci:DIR[:TAG]` layouts (oci/layout.ts) and registry
// references (`host/repo[:tag|@digest]`) behind one pair of interfaces, so the pipeline never
// asks which one it has. Not a general copy tool.

import { LocalFile } from '../blockfile/local.js';
import { DadiError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import {
  type ImageSource,
  type ImageTarget,
  isLayoutSpec,
  LayoutSource,
  LayoutTarget,
  type ResolvedManifest,
} from '../oci/layout.js';
import type { Descriptor, ImageConfig, Platform } from '../oci/manifest.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';
import { formatReference, parseReference, type Reference } from '../registry/reference.js';

export type { ImageSource, ImageTarget, ResolvedManifest } from '../oci/layout.js';

export interface EndpointOptions {
  /** A shared registry client (not closed by the endpoint). */
  client?: RegistryClient;
  /** Options for a client made by the endpoint when `client` is not given. */
  registry?: RegistryClientOptions;
}

function clientFor(opts: EndpointOptions): { client: RegistryClient; owned: boolean } {
  return opts.client
    ? { client: opts.client, owned: false }
    : { client: new RegistryClient(opts.registry), owned: true };
}

/** A registry repository read as an ImageSource. */
export class RegistrySource implements ImageSource {
  constructor(
    readonly name: string,
    readonly ref: Reference,
    readonly client: RegistryClient,
    private readonly owned: boolean,
  ) {}

  async resolve(opts: { platform?: Platform } = {}): Promise<ResolvedManifest> {
    const r = await this.client.resolveImage(this.ref, opts);
    return {
      digest: r.digest,
      mediaType: r.mediaType,
      manifest: r.manifest,
      bytes: r.bytes,
      indexes: r.indexes.map((i) => i.digest),
    };
  }

  getConfig(desc: Descriptor): Promise<{ config: ImageConfig; bytes: Buffer }> {
    return this.client.getImageConfig(this.ref, desc);
  }

  async *blobStream(desc: Descriptor, opts: { signal?: AbortSignal } = {}): AsyncIterable<Uint8Array> {
    let n = 0;
    for await (const c of this.client.blobStream(this.ref, desc.digest, opts)) {
      n += c.length;
      if (n > desc.size) {
        throw new DadiError(
          'ECORRUPT',
          `${this.name}@${desc.digest}: blob is larger than its descriptor's ${desc.size} bytes`,
        );
      }
      yield c;
    }
    if (n !== desc.size) {
      throw new DadiError(
        'ECORRUPT',
        `${this.name}@${desc.digest}: blob is ${n} bytes, its descriptor says ${desc.size}`,
      );
    }
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.close();
  }
}

/** A registry repository written as an ImageTarget; the manifest goes to the ref's tag (or by digest). */
export class RegistryTarget implements ImageTarget {
  constructor(
    readonly name: string,
    readonly ref: Reference,
    readonly client: RegistryClient,
    private readonly owned: boolean,
  ) {}

  statBlob(digest: Digest): Promise<number | undefined> {
    return this.client.statBlob(this.ref, digest);
  }

  async putBlobFile(path: string, desc: { digest: Digest; size: number }): Promise<void> {
    const file = await LocalFile.open(path);
    try {
      if (file.size !== desc.size)
        throw new DadiError('ECORRUPT', `${path}: ${file.size} bytes, expected ${desc.size}`);
      await this.client.pushBlob(this.ref, file, { digest: desc.digest });
    } finally {
      await file.close();
    }
  }

  async putBlob(bytes: Uint8Array): Promise<{ digest: Digest; size: number }> {
    const r = await this.client.pushBlob(this.ref, bytes);
    return { digest: r.digest, size: r.size };
  }

  putManifest(bytes: Uint8Array, mediaType: string): Promise<Digest> {
    const ref: Reference = { registry: this.ref.registry, repository: this.ref.repository };
    if (this.ref.tag !== undefined) ref.tag = this.ref.tag;
    return this.client.putManifest(ref, bytes, mediaType);
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.close();
  }
}

/**
 * Open an image to read: `oci:DIR[:TAG|@DIGEST]` or `host[:port]/repo[:tag|@digest]`.
 * @example const src = await openImageSource('oci:./hello:amd64'); const img = await src.resolve();
 */
export async function openImageSource(spec: string, opts: EndpointOptions = {}): Promise<ImageSource> {
  if (isLayoutSpec(spec)) return LayoutSource.open(spec);
  const ref = parseReference(spec);
  const { client, owned } = clientFor(opts);
  return new RegistrySource(formatReference(ref), ref, client, owned);
}

/**
 * Open an image to write: `oci:DIR[:TAG]` (created if absent) or `host[:port]/repo[:tag]`.
 * @example const dst = await openImageTarget('127.0.0.1:5000/app:obd');
 */
export async function openImageTarget(spec: string, opts: EndpointOptions = {}): Promise<ImageTarget> {
  if (isLayoutSpec(spec)) return LayoutTarget.open(spec);
  const ref = parseReference(spec);
  if (ref.digest) throw new DadiError('EINVAL', `${spec}: a target names a tag, not a digest`);
  const { client, owned } = clientFor(opts);
  return new RegistryTarget(formatReference(ref), ref, client, owned);
}
