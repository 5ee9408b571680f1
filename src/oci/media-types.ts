// OCI and Docker media types, and the overlaybd layer annotation keys (image-conventions §1).
// Only names and predicates here; parsing lives in manifest.ts.

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  /** artifactType of converted manifests in referrers mode. */
  overlaybdNativeArtifact: 'application/vnd.containerd.overlaybd.native.v1+json',
  overlaybdTurboArtifact: 'application/vnd.containerd.overlaybd.turbo.v1+json',
} as const;

/** Image manifests (one platform). */
export const MANIFEST_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
/** Indexes / manifest lists (several platforms). */
export const INDEX_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
/** What we send as `Accept` when fetching a manifest by tag or digest. */
export const ACCEPT_MANIFEST: readonly string[] = [...MANIFEST_TYPES, ...INDEX_TYPES];

export function isManifestType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && MANIFEST_TYPES.includes(mediaType);
}

export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && INDEX_TYPES.includes(mediaType);
}

/** True for uncompressed tar layer types (OCI or Docker). */
export function isTarLayerType(mediaType: string): boolean {
  return mediaType === MediaType.ociLayer || mediaType === MediaType.dockerLayer;
}

/** True for gzip tar layer types (OCI or Docker). */
export function isGzipLayerType(mediaType: string): boolean {
  return mediaType === MediaType.ociLayerGzip || mediaType === MediaType.dockerLayerGzip;
}

/**
 * Layer annotation keys of overlaybd / accelerated-container-image (`pkg/label/label.go`).
 * containerd copies keys with the `containerd.io/snapshot/` prefix into snapshot labels, so the
 * exact spelling matters.
 */
export const OverlaybdAnnotation = {
  blobDigest: 'containerd.io/snapshot/overlaybd/blob-digest',
  blobSize: 'containerd.io/snapshot/overlaybd/blob-size',
  version: 'containerd.io/snapshot/overlaybd/version',
  fsType: 'containerd.io/snapshot/overlaybd/blob-fs-type',
  accelerationLayer: 'containerd.io/snapshot/overlaybd/acceleration-layer',
  turboTargetDigest: 'containerd.io/snapshot/overlaybd/turbo-oci/target-digest',
  turboTargetMediaType: 'containerd.io/snapshot/overlaybd/turbo-oci/target-media-type',
  fastociTargetDigest: 'containerd.io/snapshot/overlaybd/fastoci/target-digest',
  fastociTargetMediaType: 'containerd.io/snapshot/overlaybd/fastoci/target-media-type',
} as const;

/** Values of the `version` annotation. */
export const OverlaybdVersion = {
  native: '0.1.0',
  turboOci: '0.1.0-turbo.ociv1',
  fastOciLegacy: '0.1.0-fastoci',
} as const;

/** Standard OCI annotation keys we read or write. */
export const OciAnnotation = {
  refName: 'org.opencontainers.image.ref.name',
  created: 'org.opencontainers.image.created',
} as const;
