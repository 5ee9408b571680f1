import { describe, expect, it } from 'vitest';
import { DadiError } from '../errors.js';
import { goSingleFileTar } from '../format/tar/index.js';
import { MediaType, OverlaybdAnnotation } from '../oci/media-types.js';
import {
  accelerationLayerBlob,
  accelerationLayerDescriptor,
  splitAccelerationLayer,
  traceOfAccelerationLayer,
} from './accel-layer.js';
import { encodeTrace } from './trace-format.js';

const D = `sha256:${'ab'.repeat(32)}` as const;

describe('acceleration layer', () => {
  it('is set apart only when it is the top layer', () => {
    const disk = { annotations: { [OverlaybdAnnotation.blobDigest]: D } };
    const accel = { annotations: { [OverlaybdAnnotation.accelerationLayer]: 'yes' } };
    expect(splitAccelerationLayer([disk, accel])).toEqual({ lowers: [disk], accel });
    expect(splitAccelerationLayer([accel, disk])).toEqual({ lowers: [accel, disk] });
    expect(splitAccelerationLayer([])).toEqual({ lowers: [] });
  });

  it("has the reference loader's descriptor: OCI tar, annotations sorted, fs type copied", () => {
    const d = accelerationLayerDescriptor({ digest: D, size: 2048 }, 'ext4');
    expect(d.mediaType).toBe(MediaType.ociLayer);
    expect(Object.entries(d.annotations!)).toEqual([
      [OverlaybdAnnotation.accelerationLayer, 'yes'],
      [OverlaybdAnnotation.blobDigest, D],
      [OverlaybdAnnotation.fsType, 'ext4'],
      [OverlaybdAnnotation.blobSize, '2048'],
      [OverlaybdAnnotation.version, '0.1.0'],
    ]);
  });

  it('gives back the trace it holds', async () => {
    const records = [{ layer: 1, offset: 4096, count: 512 }];
    expect(await traceOfAccelerationLayer(accelerationLayerBlob(encodeTrace(records)), 'l')).toEqual(records);
  });

  it('refuses a priority list, another member, a bad checksum — naming the layer', async () => {
    const err = async (blob: Uint8Array) => {
      try {
        await traceOfAccelerationLayer(blob, 'reg/app@sha256:x');
      } catch (e) {
        expect(e).toBeInstanceOf(DadiError);
        expect((e as Error).message).toMatch(/^reg\/app@sha256:x: /);
        return (e as DadiError).code;
      }
      return 'no error';
    };
    expect(await err(accelerationLayerBlob(new TextEncoder().encode('/usr/bin/python3\n')))).toBe('EUNSUPPORTED');
    expect(await err(goSingleFileTar('other', encodeTrace([])))).toBe('EFORMAT');
    const bad = encodeTrace([{ layer: 0, offset: 0, count: 1 }]);
    bad[30] ^= 1;
    expect(await err(accelerationLayerBlob(bad))).toBe('ECORRUPT');
    expect(await err(new Uint8Array(100))).toBe('EFORMAT');
  });
});
