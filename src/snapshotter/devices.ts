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
  // The client of the daemon that answered last, kept: DaemonClient.connect probes the socket with
  // a connection of its own (and starts a daemon when none answers), and each request opens its own
  // connection anyway, so connecting per call was one more connect and close on both sides, four
  // per container start (open, mount, two launches), the daemon's in the middle of the image's
  // mount. A request that finds no daemon there connects anew (starting one where it would have).
  let known: DaemonClient | undefined;
  const withDaemon = async <T>(autoStart: boolean, f: (c: DaemonClient) => Promise<T>): Promise<T> => {
    const kept = known;
    if (kept) {
      try {
        return await f(kept);
      } catch (e) {
        if (!unreachable(e)) throw e;
        if (known === kept) known = undefined;
      }
    }
    const c = await DaemonClient.connect({ stateDir, autoStart });
    known = c;
    return f(c);
  };
  return {
    // Typed by DeviceSet (the interface states the parameters once).
    async mount(layers, target, label, writable, trace, launch) {
      const spec = (l: RemoteLayer) => registryLayerSpecs(l.registry, l.repository, [l])[0]!;
      const req: MountTraceRequest | undefined = trace && {
        ...(trace.accelerationLayer ? { accelerationLayer: spec(trace.accelerationLayer) } : {}),
        ...(trace.record ? { record: trace.record } : {}),
        ...(trace.replay ? { replay: trace.replay } : {}),
      };
      await withDaemon(true, (c) =>
        c.mount({ layers: layers.map(spec), target, rw: !!writable, writable, label, trace: req, launch }),
      );
    },
    async openAhead(layers: RemoteLayer[]) {
      await withDaemon(true, (c) =>
        c.openAhead(layers.map((l) => registryLayerSpecs(l.registry, l.repository, [l])[0]!)),
      );
    },
    async launch(target: string, launch: LaunchRequest) {
      await withDaemon(false, (c) => c.launch(target, launch));
    },
    async umount(target: string) {
      await withDaemon(false, (c) => c.umount(target));
    },
  };
}

/** A request that never reached a daemon: nothing listens on the socket, or there is no socket. */
function unreachable(e: unknown): boolean {
  const code = ((e as { cause?: NodeJS.ErrnoException } | undefined)?.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}
