// A short seeded sample of the layer-tar fuzzer (the 100k run is bench/fuzz-layer-tar.ts): mutated
// layers with PAX records, GNU long names/links, whiteouts, opaque dirs, hard links and devices
// either apply (and the filesystem reads back) or fail with a DadiError; never anything else.

import { describe, expect, it } from 'vitest';
import { checkLayer, fuzzFilesystems, layerTargets, runLayerFuzz } from '../../test/layer-tar-fuzz.js';
import { TEST_SEED } from '../../test/seed.js';

describe('layer tar fuzzing', () => {
  it('the unmutated seed layers apply', async () => {
    const fss = await fuzzFilesystems();
    for (const t of layerTargets()) {
      expect(await checkLayer(t.label === 'upper' ? fss.withBase : fss.empty, t.bytes), t.label).toBe('ok');
    }
  });

  it('survives 1500 seeded mutated layers: only DadiErrors, no hangs', async () => {
    const seed = TEST_SEED;
    const r = await runLayerFuzz(1500, seed);
    expect(r.crashes, `seed ${seed}:\n${r.crashLog.join('\n')}`).toBe(0);
    // Both outcomes are reached: mutations get past the checksums and some still apply.
    expect(r.ok).toBeGreaterThan(150);
    expect(r.rejected).toBeGreaterThan(150);
  }, 120_000);
});
