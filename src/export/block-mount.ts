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
import type { TimedStep } from '../util/step-timer.js';
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

/**
 * Mount `file` on `dir`. `file` may still be opening: the FUSE export, loop device and filesystem
 * are set up meanwhile. The steps (fuse, loop, filesystem) then count only their time after the
 * file was open (the caller times the opening), so that the caller's steps and these add up.
 */
export async function mountBlockFile(
  file: BlockFile | Promise<BlockFile>,
  dir: string,
  opts: BlockMountOptions,
): Promise<BlockMount> {
  const readOnly = opts.readOnly ?? true;
  const fuseDir = join(opts.stateDir, 'fuse');
  await mkdir(fuseDir, { recursive: true });
  const started = performance.now();
  let fileOpenAt = started;
  const opened = Promise.resolve(file).then((f) => {
    fileOpenAt = performance.now();
    return f;
  });
  opened.catch(() => {}); // awaited below, after the mount settled
  // One shell mounts the FUSE export, attaches the loop device and mounts the filesystem, while
  // the file is still opening: the kernel's requests on the file wait for it (fuse/export.ts).
  const fuse = await FuseExport.open(opened, fuseDir, { ...opts, readOnly });
  let attached: Promise<void> | undefined;
  let image: ImageMount | undefined;
  try {
    image = await mountImage(fuse.path, dir, {
      readOnly,
      type: opts.type,
      options: opts.options,
      loopReadAheadKb: opts.loopReadAheadKb,
      loopDirectIo: opts.loopDirectIo,
      fuse: {
        fd: fuse.deviceFd,
        dir: fuseDir,
        options: fuse.mountOptions,
        onMounted: () => {
          attached = fuse.attached();
        },
      },
    });
    await attached;
    await opened;
  } catch (e) {
    await image?.unmount({ lazy: true }).catch(() => {});
    await attached;
    if (attached) await fuse.unmount().catch(() => {});
    else await fuse.abandon();
    // The file's own failure explains the mount's (its reads failed with EIO).
    throw await opened.then(
      () => e,
      (openError: unknown) => openError,
    );
  }
  const mounted = image;
  const steps = stepsAfter(started, fileOpenAt, mounted.steps);
  let done: Promise<void> | undefined;
  return {
    fuse,
    image: mounted,
    steps,
    unmount() {
      done ??= (async () => {
        let first: unknown;
        await mounted.unmount({ lazy: true }).catch((e) => (first = e));
        await fuse.unmount().catch((e) => (first ??= e));
        if (first) throw first;
      })();
      return done;
    },
  };
}

/** `steps` (back to back from `started`) cut to their parts after `from`: the steps before it overlap other work. */
function stepsAfter(started: number, from: number, steps: readonly TimedStep[]): TimedStep[] {
  let end = started;
  return steps.map((s) => {
    const begin = Math.max(end, from);
    end += s.ms;
    return { step: s.step, ms: Math.round(Math.max(0, end - begin) * 10) / 10 };
  });
}
