// A BlockFile mounted as a filesystem in one call: FUSE single-file export in a private folder,
// a loop device on its `disk.img`, the filesystem mounted on the target; teardown in reverse order.
// The FUSE server runs in *this* process: it must have UV_THREADPOOL_SIZE set (see fuse/export.ts).
//
// @example
//   const m = await mountBlockFile(file, '/mnt/rootfs', { stateDir: '/run/dadi/m1', readOnly: true });
//   await m.unmount();

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockFile } from '../blockfile/index.js';
import { StepTimer, type TimedStep } from '../util/step-timer.js';
import { FuseExport, type FuseMountOptions } from './fuse/export.js';
import { type ImageMount, mountImage } from './loop.js';

export interface BlockMountOptions
  extends Pick<FuseMountOptions, 'readers' | 'log' | 'unmountTimeoutMs' | 'readAheadKb' | 'durable'> {
  /** Private folder for the FUSE mount point (`<stateDir>/fuse`); never directly under /tmp. */
  stateDir: string;
  /** Default true. */
  readOnly?: boolean;
  /** Filesystem type (default ext4) and extra mount options. */
  type?: string;
  options?: string[];
  /** The loop device's read_ahead_kb (ext4's file readahead); default: the kernel's. */
  loopReadAheadKb?: number;
  /** The loop device's direct I/O on the FUSE file (default true; see loop.ts mountImage). */
  loopDirectIo?: boolean;
}

export interface BlockMount {
  fuse: FuseExport;
  image: ImageMount;
  /** How long each stage took to mount: FUSE, loop, filesystem. */
  steps: TimedStep[];
  /** umount the filesystem, detach the loop device, unmount FUSE — each step even if one failed. */
  unmount(): Promise<void>;
}

export async function mountBlockFile(file: BlockFile, dir: string, opts: BlockMountOptions): Promise<BlockMount> {
  const readOnly = opts.readOnly ?? true;
  const fuseDir = join(opts.stateDir, 'fuse');
  await mkdir(fuseDir, { recursive: true });
  const timer = new StepTimer();
  const fuse = await FuseExport.mount(file, fuseDir, { ...opts, readOnly });
  timer.lap('fuse');
  let image: ImageMount;
  try {
    image = await mountImage(fuse.path, dir, {
      readOnly,
      type: opts.type,
      options: opts.options,
      loopReadAheadKb: opts.loopReadAheadKb,
      loopDirectIo: opts.loopDirectIo,
    });
  } catch (e) {
    await fuse.unmount();
    throw e;
  }
  let done: Promise<void> | undefined;
  return {
    fuse,
    image,
    steps: [...timer.steps, ...image.steps],
    unmount() {
      done ??= (async () => {
        let first: unknown;
        await image.unmount({ lazy: true }).catch((e) => (first = e));
        await fuse.unmount().catch((e) => (first ??= e));
        if (first) throw first;
      })();
      return done;
    },
  };
}
