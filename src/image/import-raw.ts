// Copy a raw disk image into a writable layer, skipping all-zero 4 KiB pages so the layer stays
// small (like `overlaybd-apply --raw` of a sparse image). Not a filesystem tool.

import type { WritableBlockFile } from '../blockfile/blockfile.js';
import { LocalFile } from '../blockfile/local.js';
import { DadiError } from '../errors.js';
import { nonZeroRuns } from './raw-disk.js';

export interface ImportStats {
  imageSize: number;
  bytesWritten: number;
}

export async function importRawImage(imagePath: string, target: WritableBlockFile): Promise<ImportStats> {
  const image = await LocalFile.open(imagePath);
  try {
    if (image.size % 512 !== 0)
      throw new DadiError('EINVAL', `${imagePath}: size ${image.size} is not a multiple of 512`);
    if (image.size > target.size) {
      throw new DadiError(
        'ERANGE',
        `${imagePath}: image (${image.size} bytes) is larger than the layer (${target.size} bytes)`,
      );
    }
    const buf = Buffer.allocUnsafe(1 << 20);
    let written = 0;
    for (let off = 0; off < image.size; off += buf.length) {
      const n = await image.read(buf, off);
      const view = buf.subarray(0, n);
      for (const [s, e] of nonZeroRuns(view)) {
        await target.write(view.subarray(s, e), off + s);
        written += e - s;
      }
    }
    await target.flush();
    return { imageSize: image.size, bytesWritten: written };
  } finally {
    await image.close();
  }
}
