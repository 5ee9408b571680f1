// The host daemon as dadi runs it: local layer files plus registry blobs (through the shared
// block cache). Both `dadi daemon` and the on-demand auto-start entry call this.

import { runDaemonForeground } from './daemon.js';
import { fileLayerSource, LayerResolver } from './layer-source.js';
import { registryLayerSource } from './registry-source.js';

export async function runHostDaemon(opts: { stateDir?: string; cacheDir?: string } = {}): Promise<void> {
  const registry = registryLayerSource({ cacheDir: opts.cacheDir });
  try {
    await runDaemonForeground({
      stateDir: opts.stateDir,
      resolver: new LayerResolver([fileLayerSource, registry]),
      resolveImage: (ref, platform) => registry.resolveImage(ref, platform),
    });
  } finally {
    await registry.close();
  }
}
