// Convert OCI/Docker images into overlaybd images (image-conventions §2.1): the pipeline, the
// manifest/config rules, progress, the layer record.

export { type AddDigestsResult, addChunkDigests } from './add-digests.js';
export * from './all-platforms.js';
export * from './batch.js';
export * from './convert.js';
export * from './manifest.js';
export * from './progress.js';
export * from './record.js';
