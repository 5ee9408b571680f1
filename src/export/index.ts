// Block exports: a BlockFile served to the kernel or to VMs — FUSE single-file export (+ loop
// device + mount) and an NBD server.
export * from './block-mount.js';
export * from './fuse/index.js';
export * from './loop.js';
export * from './nbd/index.js';
export { scrubDevices } from './scrub.js';
export {
  abortFuseConnection,
  findMount,
  forceUnmountFuse,
  type MountEntry,
  readMounts,
  runProgram,
} from './system.js';
