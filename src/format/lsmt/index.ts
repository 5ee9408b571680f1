// LSMT: the layer format of overlaybd (segment index, sealed layer, writable layer, stack, commit).
export * from './combo.js';
export * from './commit.js';
export * from './constants.js';
export * from './header.js';
export * from './merge.js';
export * from './mutable-index.js';
export { type HoleFiller, mappedExtents, readMapped, type SegmentLookup } from './read.js';
export * from './sealed.js';
export * from './segment.js';
export * from './segment-index.js';
export * from './stack.js';
export * from './uuid.js';
export * from './writable.js';
