// OCI image layouts on disk (`oci:DIR[:TAG|@DIGEST]`): read index.json (tags are the
// `org.opencontainers.image.ref.name` annotations), resolve nested indexes to one platform, read
// blobs with digest checks, and write blobs (atomically: temp file + rename) and tags.
// Also the layout as an ImageSource / ImageTarget (image-source.ts; the registry ones are in registry/).

import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DadiError } from '../errors.js';
import { removeIfInterrupted, tempNameFor, writeFileAtomic } from '../util/atomic-output.js';
import { verifiedFileStream } from './blob-file.js';
import { type Digest, digestHex, parseDigest, sha256Of } from './digest.js';
import type { ImageSource, ImageTarget, ResolvedManifest } from './image-source.js';
import {
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type Platform,
  parseImageConfig,
  parseManifest,
} from './manifest.js';
import { MediaType, OciAnnotation } from './media-types.js';
import { formatPlatform, hostPlatform, platformImages, selectPlatform } from './platform.js';

// ---------------------------------------------------------------- layout specs

export interface LayoutSpec {
  dir: string;
  tag?: string;
  digest?: Digest;
}

/** True for `oci:…` image specs. */
export function isLayoutSpec(spec: string): boolean {
  return spec.startsWith('oci:');
}

/** Tags of `oci:` specs: what the OCI distribution spec allows as a tag. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const SPEC_FORMS = 'write oci:DIR, oci:DIR:TAG or oci:DIR@sha256:… (TAG: letters, digits, _ . -, at most 128)';

/**
 * Parse `oci:DIR`, `oci:DIR:TAG` or `oci:DIR@sha256:…`. The rule (README, "Image names"): the
 * digest is split off first; then a colon in the last path component starts the tag, which must be
 * a valid tag. Colons in parent folders belong to DIR (a tag has no `/`). Refused as ambiguous: a
 * last component with two colons (`oci:dir:a:b`), and `oci:NAME:TAG` when a folder named
 * `NAME:TAG` exists too.
 *
 * ```ts
 * parseLayoutSpec('oci:/tmp/img:v1') // { dir: '/tmp/img', tag: 'v1' }
 * ```
 */
export function parseLayoutSpec(spec: string): LayoutSpec {
  const q = JSON.stringify(spec);
  if (!isLayoutSpec(spec)) throw new DadiError('EINVAL', `${q}: not an oci: layout spec`);
  let rest = spec.slice(4);
  let digest: Digest | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && rest.slice(at + 1).startsWith('sha')) {
    digest = parseDigest(rest.slice(at + 1), spec);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastPart = rest.slice(rest.lastIndexOf('/') + 1);
  const colons = lastPart.split(':').length - 1;
  if (colons > 1) {
    throw new DadiError('EINVAL', `${q}: ambiguous: more than one ':' after the last '/'; ${SPEC_FORMS}`);
  }
  if (colons === 1) {
    const colon = rest.lastIndexOf(':');
    tag = rest.slice(colon + 1);
    if (tag === '') throw new DadiError('EINVAL', `${q}: empty tag; ${SPEC_FORMS}`);
    if (!TAG.test(tag)) throw new DadiError('EINVAL', `${q}: ${JSON.stringify(tag)} is not a valid tag; ${SPEC_FORMS}`);
    if (colon > 0 && isDirectory(rest)) {
      throw new DadiError(
        'EINVAL',
        `${q}: ambiguous: the folder ${JSON.stringify(rest)} exists, but this reads as folder ${JSON.stringify(rest.slice(0, colon))} with tag ${JSON.stringify(tag)}; rename or link the folder to a name without ':'`,
      );
    }
    rest = rest.slice(0, colon);
  }
  if (rest === '') throw new DadiError('EINVAL', `${q}: no directory; ${SPEC_FORMS}`);
  const out: LayoutSpec = { dir: resolve(rest) };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** Spec parsing happens once at start-up, before any I/O of the command: a sync stat is fine. */
function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the layout

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const MAX_JSON = 16 << 20;
const MAX_INDEX_DEPTH = 4;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * An OCI image layout folder.
 *
 * ```ts
 * const layout = await OciLayout.open('/tmp/hello');
 * const img = await layout.resolve({ tag: 'amd64' });
 * const bytes = await layout.readBlob(img.manifest.config);
 * ```
 */
export class OciLayout {
  private constructor(readonly dir: string) {}

  /** Open an existing layout (checks `oci-layout`). */
  static async open(dir: string): Promise<OciLayout> {
    const path = join(dir, LAYOUT_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOTFOUND' : 'EIO';
      throw new DadiError(code, `${dir}: not an OCI image layout (no readable ${LAYOUT_FILE})`, { cause: e });
    }
    let version: unknown;
    try {
      version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      throw new DadiError('EFORMAT', `${path}: not valid JSON`);
    }
    if (typeof version !== 'string' || !version.startsWith('1.')) {
      throw new DadiError('EUNSUPPORTED', `${path}: imageLayoutVersion ${JSON.stringify(version)} (need 1.x)`);
    }
    return new OciLayout(dir);
  }

  /** Open a layout, creating an empty one (folder, `oci-layout`, `index.json`) if absent. */
  static async openOrCreate(dir: string): Promise<OciLayout> {
    if (await exists(join(dir, LAYOUT_FILE))) return OciLayout.open(dir);
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    if (!(await exists(join(dir, INDEX_FILE)))) {
      await writeFileAtomic(join(dir, INDEX_FILE), Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })));
    }
    await writeFileAtomic(join(dir, LAYOUT_FILE), Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    return new OciLayout(dir);
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(parseDigest(digest, this.dir)));
  }

  /** The top-level index (index.json). */
  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, INDEX_FILE);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw new DadiError('ENOTFOUND', `${path}: cannot read: ${(e as Error).message}`, { cause: e });
    }
    const p = parseManifest(bytes, MediaType.ociIndex, path);
    if (p.kind !== 'index') throw new DadiError('EFORMAT', `${path}: not an image index`);
    return p.index;
  }

  /** Size of a blob in the layout, or undefined. */
  async statBlob(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  /** Read a whole (small) blob; its size and digest are checked. */
  async readBlob(desc: { digest: string; size?: number }, max = MAX_JSON): Promise<Buffer> {
    const path = this.blobPath(desc.digest);
    const size = await this.statBlob(desc.digest);
    if (size === undefined) throw new DadiError('ENOTFOUND', `${this.dir}: blob ${desc.digest} is missing`);
    if (desc.size !== undefined && size !== desc.size) {
      throw new DadiError('ECORRUPT', `${path}: blob is ${size} bytes, its descriptor says ${desc.size}`);
    }
    if (size > max) throw new DadiError('ERANGE', `${path}: blob of ${size} bytes is larger than ${max}`);
    const bytes = await readFile(path);
    const got = sha256Of(bytes);
    if (got !== desc.digest) throw new DadiError('ECORRUPT', `${path}: content hashes to ${got}, not ${desc.digest}`);
    return bytes;
  }

  /** Stream a blob; size and digest are checked at the end (ECORRUPT from the iterator). */
  async *blobStream(desc: { digest: string; size?: number }): AsyncGenerator<Uint8Array> {
    const path = this.blobPath(desc.digest);
    try {
      await stat(path);
    } catch (e) {
      throw new DadiError('ENOTFOUND', `${this.dir}: blob ${desc.digest} is missing`, { cause: e });
    }
    yield* verifiedFileStream(path, desc);
  }

  /** Store bytes as a blob (atomic). Returns its digest and size. */
  async writeBlob(bytes: Uint8Array): Promise<{ digest: Digest; size: number }> {
    const digest = sha256Of(bytes);
    const path = this.blobPath(digest);
    if ((await this.statBlob(digest)) !== bytes.length) {
      await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
      await writeFileAtomic(path, bytes);
    }
    return { digest, size: bytes.length };
  }

  /**
   * Store a local file as blob `digest` (the caller vouches for the digest): a hard link when
   * possible, else a copy to a temp name and a rename. A no-op when the blob is present.
   */
  async importBlobFile(file: string, digest: Digest, size: number): Promise<void> {
    if ((await this.statBlob(digest)) === size) return;
    const path = this.blobPath(digest);
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await link(file, tmp).catch(() => copyFile(file, tmp));
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw new DadiError('EIO', `${path}: cannot store blob: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Point `tag` at `desc` in index.json (entries with the same ref name are replaced); without a
   * tag the descriptor is added untagged unless already there. index.json is rewritten atomically.
   */
  async setTag(desc: Descriptor, tag?: string): Promise<void> {
    const index = await this.readIndex();
    const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    if (desc.platform) entry.platform = desc.platform;
    if (tag !== undefined) entry.annotations = { [OciAnnotation.refName]: tag };
    const keep = index.manifests.filter((d) =>
      tag !== undefined
        ? d.annotations?.[OciAnnotation.refName] !== tag
        : !(d.digest === desc.digest && d.annotations?.[OciAnnotation.refName] === undefined),
    );
    const out = { ...index, manifests: [...keep, entry] };
    await writeFileAtomic(join(this.dir, INDEX_FILE), Buffer.from(`${JSON.stringify(out, null, 2)}\n`));
  }

  /** Read and parse a manifest or index blob. */
  private async readManifest(desc: Descriptor) {
    const bytes = await this.readBlob(desc);
    return { bytes, parsed: parseManifest(bytes, desc.mediaType, `${this.dir}@${desc.digest}`) };
  }

  /**
   * Resolve a tag (matched against `org.opencontainers.image.ref.name`) or digest to one image
   * manifest, walking (nested) indexes to the entry for `platform` (default: this machine's).
   * Without tag or digest, index.json itself is the index to resolve.
   */
  async resolve(opts: { tag?: string; digest?: Digest; platform?: Platform } = {}): Promise<ResolvedManifest> {
    const want = opts.platform ?? hostPlatform();
    const { top, desc, label } = await this.start(opts);
    const indexes: Digest[] = [];
    let current: { index: ImageIndex } | { manifest: ImageManifest; bytes: Buffer; desc: Descriptor } | undefined;
    if (desc) {
      const m = await this.readManifest(desc);
      current =
        m.parsed.kind === 'index' ? { index: m.parsed.index } : { manifest: m.parsed.manifest, bytes: m.bytes, desc };
      if (m.parsed.kind === 'index') indexes.push(desc.digest);
    } else current = { index: top };
    for (let depth = 0; 'index' in current; depth++) {
      if (depth > MAX_INDEX_DEPTH) throw new DadiError('EFORMAT', `${label}: indexes nested too deep`);
      const d = selectPlatform(current.index, want);
      if (!d) {
        const have = current.index.manifests.filter((x) => x.platform).map((x) => formatPlatform(x.platform!));
        throw new DadiError(
          'ENOTFOUND',
          `${label}: no image for platform ${formatPlatform(want)} (available: ${have.join(', ') || 'none'})`,
        );
      }
      const m = await this.readManifest(d);
      if (m.parsed.kind === 'index') {
        indexes.push(d.digest);
        current = { index: m.parsed.index };
      } else current = { manifest: m.parsed.manifest, bytes: m.bytes, desc: d };
    }
    const mediaType = current.manifest.mediaType ?? current.desc.mediaType;
    return { digest: current.desc.digest, mediaType, manifest: current.manifest, bytes: current.bytes, indexes };
  }

  /** The image manifests, with their platforms, of the index a tag or digest names (see ImageSource). */
  async platformImages(opts: { tag?: string; digest?: Digest } = {}): Promise<Descriptor[]> {
    const { top, desc, label } = await this.start(opts);
    const m = desc ? (await this.readManifest(desc)).parsed : ({ kind: 'index', mediaType: '', index: top } as const);
    if (m.kind !== 'index') return [];
    return platformImages(m.index, async (d) => (await this.readManifest(d)).parsed, label);
  }

  /** index.json, the descriptor a tag or digest names (none: index.json is the index), and a label. */
  private async start(opts: { tag?: string; digest?: Digest }) {
    const top = await this.readIndex();
    const label = `oci:${this.dir}${opts.tag !== undefined ? `:${opts.tag}` : ''}${opts.digest ? `@${opts.digest}` : ''}`;
    let desc: Descriptor | undefined;
    if (opts.digest) {
      desc = top.manifests.find((d) => d.digest === opts.digest);
      if (!desc) {
        const size = await this.statBlob(opts.digest);
        if (size === undefined) throw new DadiError('ENOTFOUND', `${label}: no such manifest`);
        const bytes = await this.readBlob({ digest: opts.digest });
        const p = parseManifest(bytes, undefined, label);
        desc = { mediaType: p.mediaType, digest: opts.digest, size };
      }
    } else if (opts.tag !== undefined) {
      const hits = top.manifests.filter((d) => d.annotations?.[OciAnnotation.refName] === opts.tag);
      const digests = new Set(hits.map((d) => d.digest));
      if (hits.length === 0) {
        const names = top.manifests.map((d) => d.annotations?.[OciAnnotation.refName]).filter((x) => x !== undefined);
        throw new DadiError(
          'ENOTFOUND',
          `${label}: no entry named ${JSON.stringify(opts.tag)} in index.json (names: ${names.join(', ') || 'none'})`,
        );
      }
      if (digests.size > 1) throw new DadiError('EFORMAT', `${label}: the name is given to ${digests.size} manifests`);
      desc = hits[0];
    } else if (top.manifests.length === 1) desc = top.manifests[0];
    return { top, desc, label };
  }
}

// ---------------------------------------------------------------- layout as source / target

/** An OCI layout read as an ImageSource. */
export class LayoutSource implements ImageSource {
  private constructor(
    readonly name: string,
    readonly layout: OciLayout,
    private readonly spec: LayoutSpec,
  ) {}

  static async open(spec: string): Promise<LayoutSource> {
    const s = parseLayoutSpec(spec);
    return new LayoutSource(spec, await OciLayout.open(s.dir), s);
  }

  resolve(opts: { platform?: Platform; digest?: Digest } = {}): Promise<ResolvedManifest> {
    if (opts.digest) return this.layout.resolve({ digest: opts.digest });
    return this.layout.resolve({ ...opts, tag: this.spec.tag, digest: this.spec.digest });
  }

  platformImages(): Promise<Descriptor[]> {
    return this.layout.platformImages({ tag: this.spec.tag, digest: this.spec.digest });
  }

  async getConfig(desc: Descriptor): Promise<{ config: ImageConfig; bytes: Buffer }> {
    const bytes = await this.layout.readBlob(desc);
    return { config: parseImageConfig(bytes, `${this.name}: config ${desc.digest}`), bytes };
  }

  blobStream(desc: Descriptor): AsyncIterable<Uint8Array> {
    return this.layout.blobStream(desc);
  }

  localBlobPath(desc: Descriptor): string {
    return this.layout.blobPath(desc.digest);
  }

  async close(): Promise<void> {}
}

/**
 * An OCI layout written as an ImageTarget; the manifest gets the spec's tag. A layout that does not
 * exist yet is built in a temporary folder beside its place and renamed there when the manifest is
 * stored (the last step of a conversion), so a failed conversion leaves no layout behind.
 */
export class LayoutTarget implements ImageTarget {
  private constructor(
    readonly name: string,
    private layout: OciLayout,
    private readonly spec: LayoutSpec,
    /** The temporary folder of a new layout, until it is renamed into place. */
    private staging: string | undefined,
    private readonly releaseStaging: () => void = () => {},
  ) {}

  static async open(spec: string): Promise<LayoutTarget> {
    const s = parseLayoutSpec(spec);
    if (s.digest) throw new DadiError('EINVAL', `${spec}: a target cannot name a digest`);
    if (await exists(join(s.dir, LAYOUT_FILE)))
      return new LayoutTarget(spec, await OciLayout.open(s.dir), s, undefined);
    const entries = await readdir(s.dir).catch(() => undefined);
    if (entries && entries.length > 0) {
      throw new DadiError(
        'EINVAL',
        `${spec}: ${s.dir} exists and is not an OCI layout (no ${LAYOUT_FILE}); give a new or empty folder`,
      );
    }
    await mkdir(dirname(s.dir), { recursive: true });
    const staging = tempNameFor(s.dir);
    const release = removeIfInterrupted(staging);
    return new LayoutTarget(spec, await OciLayout.openOrCreate(staging), s, staging, release);
  }

  statBlob(digest: Digest): Promise<number | undefined> {
    return this.layout.statBlob(digest);
  }

  putBlobFile(path: string, desc: { digest: Digest; size: number }): Promise<void> {
    return this.layout.importBlobFile(path, desc.digest, desc.size);
  }

  putBlob(bytes: Uint8Array): Promise<{ digest: Digest; size: number }> {
    return this.layout.writeBlob(bytes);
  }

  async putManifest(bytes: Uint8Array, mediaType: string, opts: { untagged?: boolean } = {}): Promise<Digest> {
    const { digest, size } = await this.layout.writeBlob(bytes);
    if (opts.untagged) return digest; // a new layout stays staged until its tagged manifest
    await this.layout.setTag({ mediaType, digest, size }, this.spec.tag);
    if (this.staging) {
      try {
        // rename(2) also replaces an empty folder left where the layout goes.
        await rename(this.staging, this.spec.dir);
      } catch (e) {
        throw new DadiError(
          'EIO',
          `${this.name}: cannot move the new layout into ${this.spec.dir}: ${(e as Error).message}`,
          { cause: e },
        );
      }
      this.staging = undefined;
      this.releaseStaging();
      this.layout = await OciLayout.open(this.spec.dir);
    }
    return digest;
  }

  /** Removes a new layout that never got its manifest. */
  async close(): Promise<void> {
    if (this.staging) await rm(this.staging, { recursive: true, force: true });
    this.staging = undefined;
    this.releaseStaging();
  }
}
