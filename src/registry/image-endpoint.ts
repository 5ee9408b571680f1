// A registry repository as an ImageSource (resolve, config, verified blob streams) and as an
// ImageTarget (blob pushes, manifest under the ref's tag). The layout counterparts are in
// oci/layout.ts; image/source.ts chooses between them.

import { LocalFile } from '../blockfile/local.js';
import { DadiError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { ImageSource, ImageTarget, ResolvedManifest } from '../oci/image-source.js';
import type { Descriptor, ImageConfig, Platform } from '../oci/manifest.js';
import { platformImages } from '../oci/platform.js';
import type { RegistryClient } from './client.js';
import type { Reference } from './reference.js';

/** A registry repository read as an ImageSource. */
export class RegistrySource implements ImageSource {
  /** `owned`: close the client with the source. */
  constructor(
    readonly name: string,
    readonly ref: Reference,
    readonly client: RegistryClient,
    private readonly owned: boolean,
  ) {}

  async resolve(opts: { platform?: Platform; digest?: Digest } = {}): Promise<ResolvedManifest> {
    const ref = opts.digest
      ? { registry: this.ref.registry, repository: this.ref.repository, digest: opts.digest }
      : this.ref;
    const r = await this.client.resolveImage(ref, opts);
    return {
      digest: r.digest,
      mediaType: r.mediaType,
      manifest: r.manifest,
      bytes: r.bytes,
      indexes: r.indexes.map((i) => i.digest),
    };
  }

  async platformImages(): Promise<Descriptor[]> {
    const top = await this.client.getManifest(this.ref);
    if (top.parsed.kind !== 'index') return [];
    const read = async (d: Descriptor) =>
      (
        await this.client.getManifest({
          registry: this.ref.registry,
          repository: this.ref.repository,
          digest: d.digest,
        })
      ).parsed;
    return platformImages(top.parsed.index, read, this.name);
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
  /** `owned`: close the client with the target. */
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

  /** A cross-repository mount: only from a repository of the same registry. */
  async mountBlob(desc: Descriptor, from: ImageSource | ImageTarget): Promise<boolean> {
    if (!(from instanceof RegistrySource || from instanceof RegistryTarget)) return false;
    if (from.ref.registry !== this.ref.registry) return false;
    return this.client.mountBlob(this.ref, desc.digest, from.ref.repository);
  }

  putManifest(bytes: Uint8Array, mediaType: string, opts: { untagged?: boolean } = {}): Promise<Digest> {
    const ref: Reference = { registry: this.ref.registry, repository: this.ref.repository };
    if (this.ref.tag !== undefined && !opts.untagged) ref.tag = this.ref.tag;
    return this.client.putManifest(ref, bytes, mediaType);
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.close();
  }
}
