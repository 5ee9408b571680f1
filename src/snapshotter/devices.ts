// The snapshotter's device set is the dadi daemon's: DADI stacks are mounted by the daemon that
// owns the host's block cache and devices (started on demand), so `dadi run`, `dadi mount` and
// containerd's containers share one cache and one device set, and a snapshotter restart leaves
// the devices of running containers alone.

import { DaemonClient } from '../runtime/client.js';
import { registryLayerSpecs } from '../runtime/layer-spec.js';
import type { LaunchRequest, MountTraceRequest } from '../runtime/protocol.js';
import type { DeviceSet } from './snapshotter.js';
import type { RemoteLayer } from './store.js';

export function daemonDevices(stateDir?: string): DeviceSet {
  const client = () => DaemonClient.connect({ stateDir });
  return {
    // Typed by DeviceSet (the interface states the parameters once).
    async mount(layers, target, label, writable, trace, launch) {
      const c = await client();
      const spec = (l: RemoteLayer) => registryLayerSpecs(l.registry, l.repository, [l])[0]!;
      const req: MountTraceRequest | undefined = trace && {
        ...(trace.accelerationLayer ? { accelerationLayer: spec(trace.accelerationLayer) } : {}),
        ...(trace.record ? { record: trace.record } : {}),
        ...(trace.replay ? { replay: trace.replay } : {}),
      };
      await c.mount({ layers: layers.map(spec), target, rw: !!writable, writable, label, trace: req, launch });
    },
    async openAhead(layers: RemoteLayer[]) {
      const c = await client();
      await c.openAhead(layers.map((l) => registryLayerSpecs(l.registry, l.repository, [l])[0]!));
    },
    async launch(target: string, launch: LaunchRequest) {
      const c = await DaemonClient.connect({ stateDir, autoStart: false });
      await c.launch(target, launch);
    },
    async umount(target: string) {
      const c = await DaemonClient.connect({ stateDir, autoStart: false });
      await c.umount(target);
    },
  };
}
