import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fixture, haveFixtures } from '../../test/fixtures.js';
import { MemoryFile } from '../blockfile/memory.js';
import { observeReads } from '../blockfile/observed.js';
import { LAYER_HEAD_BYTES, layerTailBytes } from './layer-blob.js';
import { openLayer } from './open-layer.js';

describe('layerTailBytes', () => {
  it('is a whole number of 4 KiB pages between 64 KiB and 4 MiB, never more than the blob', () => {
    for (const size of [1, 4096, 65536, 100_000, 4_737_695, 20_215_808, 58_278_400, 2 ** 40]) {
      const t = layerTailBytes(size);
      expect(t).toBeLessThanOrEqual(size);
      if (size >= 64 * 1024) {
        expect(t % 4096).toBe(0);
        expect(t).toBeGreaterThanOrEqual(64 * 1024);
        expect(t).toBeLessThanOrEqual(4 << 20);
        expect(t).toBeGreaterThanOrEqual(Math.min(4 << 20, size / 320));
      }
    }
  });

  describe.skipIf(!haveFixtures('the reference base layer'))('on the reference base layer (ext4_64)', () => {
    it('opening reads the head and the indexes at the end only; this layer needs more than the tail and still opens', async () => {
      const blob = new MemoryFile(gunzipSync(await readFile(fixture('overlaybd/ext4_64.tar.gz'))), 'ext4_64');
      const tail = layerTailBytes(blob.size);
      const past: number[] = [];
      const raw = observeReads(blob, (offset, n) => {
        if (offset + n > LAYER_HEAD_BYTES) past.push(offset);
      });
      const layer = await openLayer(raw);
      expect(layer.size).toBe(64 * 2 ** 30);
      // Its LSMT index is 1/8 of the blob (the Debian layers' indexes: 1/425-1/405): the reads
      // before the tail are the fallback, one round trip after the parallel tail fetch.
      const first = Math.min(...past);
      expect(first).toBeLessThan(blob.size - tail);
      expect(blob.size - first).toBeLessThan(blob.size / 7);
      await layer.close();
    });
  });
});
