export * from './blockfile.js';
export * from './local.js';
export * from './memory.js';
export * from './observed.js';
export * from './prefetch.js';
export * from './range.js';
export * from './sink.js';
