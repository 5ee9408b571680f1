// Convert OCI/Docker images into overlaybd images (image-conventions §2.1): the pipeline, the
// manifest/config rules, image sources and targets (layouts, registries), progress, the layer record.
export * from './convert.js';
export * from './endpoints.js';
export * from './manifest.js';
export * from './progress.js';
export * from './record.js';
