// A conversion target that knows which other targets of the same run hold a blob already: a layer
// blob another repository of the same registry received is cross-repository mounted (no bytes
// through this host) instead of uploaded again. Everything else passes through to the wrapped target.

import type { Digest } from '../oci/digest.js';
import type { ImageSource, ImageTarget } from '../oci/image-source.js';
import type { Descriptor } from '../oci/manifest.js';
import type { BlobTransfers } from './batch.js';

/** Blob digest → a target of the run that holds it. */
export type SharedBlobs = Map<Digest, ImageTarget>;

export class BlobSharingTarget implements ImageTarget {
  readonly transfers: BlobTransfers = { mounted: [], uploaded: [], present: [] };

  constructor(
    private readonly inner: ImageTarget,
    private readonly shared: SharedBlobs,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  statBlob(digest: Digest): Promise<number | undefined> {
    return this.inner.statBlob(digest);
  }

  async putBlobFile(path: string, desc: { digest: Digest; size: number }): Promise<void> {
    const holder = this.shared.get(desc.digest);
    if ((await this.inner.statBlob(desc.digest)) === desc.size) {
      this.transfers.present.push(desc.digest);
    } else if (holder && holder !== this && (await this.mountFrom(holder, desc))) {
      this.transfers.mounted.push(desc.digest);
    } else {
      await this.inner.putBlobFile(path, desc);
      this.transfers.uploaded.push(desc.digest);
    }
    if (!holder) this.shared.set(desc.digest, this);
  }

  private mountFrom(holder: ImageTarget, desc: { digest: Digest; size: number }): Promise<boolean> {
    const from = holder instanceof BlobSharingTarget ? holder.inner : holder;
    return this.inner.mountBlob?.({ mediaType: 'application/octet-stream', ...desc }, from) ?? Promise.resolve(false);
  }

  putBlob(bytes: Uint8Array): Promise<{ digest: Digest; size: number }> {
    return this.inner.putBlob(bytes);
  }

  mountBlob(desc: Descriptor, from: ImageSource | ImageTarget): Promise<boolean> {
    return this.inner.mountBlob?.(desc, from) ?? Promise.resolve(false);
  }

  putManifest(bytes: Uint8Array, mediaType: string, opts?: { untagged?: boolean }): Promise<Digest> {
    return this.inner.putManifest(bytes, mediaType, opts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
