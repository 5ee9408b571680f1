// The fuzzers' export check: a sealed layer or stack that opens must also export whole. Reads at a
// few offsets did not notice a trailer whose virtual size cut off mapped data; an export does.

import type { LayerStack, SealedLayer } from '../src/format/lsmt/index.js';
import { copyDisk } from '../src/image/raw-disk.js';

/**
 * Export `layer` in memory the way `dadi layer export` does and throw a plain Error (a fuzz crash,
 * not a DadiError) when a write falls outside the virtual size or the export reads fewer bytes
 * than the index maps (data silently dropped).
 */
export async function checkExportsWhole(layer: SealedLayer | LayerStack): Promise<void> {
  const { lengths, zeroed } = layer.index;
  let mapped = 0;
  for (let i = 0; i < layer.index.length; i++) if (zeroed[i] === 0) mapped += lengths[i]! * 512;
  const stats = await copyDisk(layer, async (data, offset) => {
    if (offset + data.length > layer.size) {
      throw new Error(
        `${layer.name}: export wrote [${offset}, ${offset + data.length}) past the virtual size ${layer.size}`,
      );
    }
  });
  if (stats.bytesRead !== mapped) {
    throw new Error(`${layer.name}: export read ${stats.bytesRead} bytes, the index maps ${mapped}`);
  }
}
