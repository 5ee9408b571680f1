// OCI data model: media types, annotations, digests, manifests, platforms.
export * from './digest.js';
export * from './image-source.js';
export * from './layout.js';
export * from './manifest.js';
export * from './media-types.js';
export * from './platform.js';
