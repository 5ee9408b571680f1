export * from './blob.js';
export * from './cache.js';
export * from './stats.js';
export * from './verify.js';
