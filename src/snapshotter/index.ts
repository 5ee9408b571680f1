// containerd integration: a proxy snapshotter (snapshots.v1 over gRPC) whose DADI layers are
// mounted lazily by the dadi daemon, and the pull that sets containerd up for it.

export { daemonDevices } from './devices.js';
export { warmContainerdCodecs } from './protos.js';
export { PullService } from './pull-service.js';
export { type SnapshotService, serveSnapshots } from './service.js';
export { type DeviceSet, type Mount, SnapshotError, Snapshotter } from './snapshotter.js';
export { warmPullPath } from './warm-up.js';
