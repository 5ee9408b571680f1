// Host runtime: the daemon owning devices (mount/umount/ps over a unix socket), its client, OCI
// runtime bundles, runc, and containers with a writable block layer or overlayfs, plus commit.
export * from './bundle.js';
export * from './client.js';
export * from './container.js';
export * from './daemon.js';
export * from './layer-source.js';
export * from './protocol.js';
export * from './runc.js';
export * from './state.js';
