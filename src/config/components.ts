// What the config's sections mean to the components that take their own option objects: the
// reference's key names (overlaybd.json) mapped onto ours. No defaults here: schema.ts has them.

import type { LayerPullConfig } from '../prefetch/layer-pull-plan.js';
import { type ConfigField, configFields, type DadiConfig } from './schema.js';

/** The background pull's settings from the `download` section. */
export function layerPullConfigOf(config: DadiConfig): LayerPullConfig {
  const d = config.download;
  return {
    enabled: d.enable,
    delay: d.delay,
    delayExtra: d.delayExtra,
    maxMBps: d.maxMBps,
    chunkSize: d.blockSize,
    concurrency: d.concurrency,
    tries: d.tryCnt,
  };
}

/** The keys whose values differ between two configurations (what a reload changed). */
export function changedKeys(a: DadiConfig, b: DadiConfig): ConfigField[] {
  const at = (c: DadiConfig, path: string) =>
    JSON.stringify(path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], c));
  return configFields().filter((f) => at(a, f.path) !== at(b, f.path));
}
