// Loop devices and filesystem mounts over an exported file (FUSE `disk.img` or any image file):
// attach with `losetup -f --show [-r]`, mount ext4 read-only or read-write, and tear down in order
// (umount, losetup -d). For the `dadi mount` path. Not the FUSE server itself (see fuse/export.ts).
//
// @example
//   const m = await mountImage('/run/dadi/m1/fuse/disk.img', '/mnt/x', { readOnly: true });
//   ...
//   await m.unmount(); // umount /mnt/x, then losetup -d

import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { DadiError } from '../errors.js';
import { StepTimer, type TimedStep } from '../util/step-timer.js';
import { findMount, runProgram } from './system.js';

export interface LoopDevice {
  /** e.g. /dev/loop3 */
  device: string;
  backingFile: string;
  readOnly: boolean;
  /** Whether the loop device reads and writes its backing file with direct I/O (the kernel's `loop/dio`). */
  directIo: boolean;
}

/** Whether a loop device does direct I/O on its backing file (sysfs `loop/dio`). */
export async function loopDirectIo(device: string): Promise<boolean> {
  const text = await readFile(`/sys/block/${basename(device)}/loop/dio`, 'utf8').catch(() => '0');
  return text.trim() === '1';
}

/** `losetup -d DEV` (the kernel defers the detach while the device is still open). */
export async function detachLoop(device: string): Promise<void> {
  const r = await runProgram('losetup', ['-d', device], { timeoutMs: 30_000 });
  if (r.code !== 0 && !/No such device|not a loop|ENXIO|No such file/i.test(r.stderr)) {
    throw new DadiError('EIO', `losetup -d ${device} failed: ${r.stderr.trim()}`);
  }
}

/** Loop devices whose backing file lies under `prefix` (from `losetup -a`), e.g. to clean up after a crash. */
export async function loopDevicesUnder(prefix: string): Promise<string[]> {
  const r = await runProgram('losetup', ['-a', '-O', 'NAME,BACK-FILE', '-n', '-l']);
  const abs = resolve(prefix);
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+)\s+(.*?)\s*$/.exec(line);
    if (!m) continue;
    const back = m[2]!.replace(/ \(deleted\)$/, '');
    if (back === abs || back.startsWith(`${abs}/`)) out.push(m[1]!);
  }
  return out;
}

/** Unmount `dir`; when busy and `lazy`, detach lazily instead. Harmless if nothing is mounted there. */
export async function unmountFilesystem(dir: string, opts: { lazy?: boolean } = {}): Promise<void> {
  if (!(await findMount(dir))) return;
  const r = await runProgram('umount', [resolve(dir)], { timeoutMs: 60_000 });
  if (r.code === 0) return;
  if (opts.lazy) {
    const l = await runProgram('umount', ['-l', resolve(dir)], { timeoutMs: 60_000 });
    if (l.code === 0) return;
  }
  throw new DadiError('EIO', `umount ${dir} failed: ${r.stderr.trim()}`);
}

export interface ImageMount {
  dir: string;
  loop: LoopDevice;
  /** How long attaching the loop device and mounting the filesystem took. */
  steps: TimedStep[];
  /** umount, then detach the loop device; each step runs even if an earlier one failed. */
  unmount(opts?: { lazy?: boolean }): Promise<void>;
}

/**
 * Attach and mount in one shell: the caller forks once instead of two or three times. A fork
 * blocks the forking process for as long as copying its page tables takes: ~15 ms for the daemon
 * (its cold-start CPU profile, bench/coldstart with DADI_BENCH_DAEMON_PROFILE), on the launch path,
 * while the FUSE requests of that same attach and mount wait for the daemon's one thread.
 * Args: file dir type options ro-flag dio read-ahead-kb [fuse-dir fuse-options]. With a FUSE folder,
 * first mounts the FUSE export there (its /dev/fuse descriptor is fd 3) and prints `fuse`. Prints the
 * device once attached, then mounts. Exit FUSE_FAILED, ATTACH_FAILED or READAHEAD_FAILED, or
 * mount's own code (the device then detached).
 */
const ATTACH_AND_MOUNT = `f=$1 dir=$2 type=$3 opts=$4 ro=$5 dio=$6 ra=$7 fusedir=$8 fuseopts=$9
if [ -n "$fusedir" ]; then mount -i -n -t fuse.dadi -o "$fuseopts" dadi "$fusedir" || exit 92; exec 3<&-; echo fuse; fi
dev=
if [ "$dio" = 1 ]; then dev=$(losetup -f --show $ro --direct-io=on "$f" 2>/dev/null) || dev=; fi
if [ -z "$dev" ]; then dev=$(losetup -f --show $ro "$f") || exit 90; fi
echo "$dev"
if [ -n "$ra" ]; then echo "$ra" >"/sys/block/\${dev#/dev/}/queue/read_ahead_kb" || { losetup -d "$dev"; exit 91; }; fi
mount -t "$type" -o "$opts" "$dev" "$dir" || { rc=$?; losetup -d "$dev"; exit $rc; }`;
const ATTACH_FAILED = 90;
const READAHEAD_FAILED = 91;
const FUSE_FAILED = 92;

/** A FUSE export the attaching shell mounts first (fuse/export.ts FuseExport.open). */
export interface FuseToMount {
  /** The /dev/fuse descriptor (the shell's fd 3). */
  fd: number;
  dir: string;
  /** `mount -t fuse.dadi -o` options. */
  options: string;
  /** mount(2) of the export succeeded (before the loop device is attached). */
  onMounted: () => void;
}

/** Attach `imageFile` to a loop device and mount its filesystem (ext4 by default) on `dir`. */
export async function mountImage(
  imageFile: string,
  dir: string,
  opts: {
    readOnly?: boolean;
    type?: string;
    options?: string[];
    /** The loop device's read_ahead_kb (what ext4 file readahead on it uses), set before the mount. */
    loopReadAheadKb?: number;
    /**
     * Default true: the loop device reads its backing file with O_DIRECT (`losetup --direct-io=on`).
     * Over a FUSE file this takes the FUSE file's page cache and its readahead out of the stack, so
     * a READ request is what ext4 asked the loop device for (its own file-aware readahead included)
     * instead of being widened again to the FUSE bdi's readahead window; the data is cached once, in
     * the loop device's and ext4's caches. When the kernel refuses direct I/O for the file (a backing
     * filesystem without O_DIRECT), the device stays attached with buffered I/O: `loop.directIo`
     * says which one it got.
     */
    loopDirectIo?: boolean;
    /** Mount this FUSE export first, in the same shell (the image file lies in it). */
    fuse?: FuseToMount;
  } = {},
): Promise<ImageMount> {
  const readOnly = opts.readOnly ?? true;
  const type = opts.type ?? 'ext4';
  const wantDio = opts.loopDirectIo ?? true;
  const kb = opts.loopReadAheadKb;
  if (kb !== undefined && (!Number.isSafeInteger(kb) || kb < 0)) {
    throw new DadiError('EINVAL', `${imageFile}: bad read_ahead_kb ${kb}`);
  }
  const file = resolve(imageFile);
  const options = [readOnly ? 'ro' : 'rw', ...(opts.options ?? [])].join(',');
  const timer = new StepTimer();
  let out = '';
  let fuseMounted = false;
  let attached = false;
  const fuse = opts.fuse;
  const r = await runProgram(
    'sh',
    [
      '-c',
      ATTACH_AND_MOUNT,
      'dadi-mount',
      file,
      resolve(dir),
      type,
      options,
      readOnly ? '-r' : '',
      wantDio ? '1' : '0',
      kb === undefined ? '' : String(kb),
      ...(fuse ? [resolve(fuse.dir), fuse.options] : []),
    ],
    {
      timeoutMs: 60_000,
      stdio3: fuse?.fd,
      onStdout: (chunk) => {
        out += chunk.toString();
        const lines = out.split('\n').slice(0, -1);
        if (fuse && !fuseMounted && lines.includes('fuse')) {
          fuseMounted = true;
          timer.lap('fuse');
          fuse.onMounted();
        }
        if (!attached && lines.some((l) => l.startsWith('/dev/'))) {
          attached = true;
          timer.lap('loop');
        }
      },
    },
  );
  const device = r.stdout.split('\n').find((l) => l.startsWith('/dev/')) ?? '';
  const stderr = r.stderr.trim();
  if (r.code === FUSE_FAILED) throw new DadiError('EIO', `FUSE mount on ${fuse?.dir} failed: ${stderr}`);
  if (r.code === ATTACH_FAILED) throw new DadiError('EIO', `attach loop device to ${file}: losetup failed: ${stderr}`);
  if (r.code === READAHEAD_FAILED)
    throw new DadiError('EIO', `${device}: cannot set read_ahead_kb to ${kb}: ${stderr}`);
  if (r.code !== 0) {
    throw new DadiError(
      'EIO',
      `mount ${device || file} on ${dir}: mount -t ${type} -o ${options} failed (exit ${r.code}): ${stderr}`,
    );
  }
  if (!device.startsWith('/dev/loop')) throw new DadiError('EIO', `losetup printed no device for ${file}: ${device}`);
  timer.lap(type);
  const loop: LoopDevice = { device, backingFile: file, readOnly, directIo: wantDio && (await loopDirectIo(device)) };
  let done: Promise<void> | undefined;
  return {
    dir: resolve(dir),
    loop,
    steps: timer.steps,
    unmount(u = {}) {
      done ??= (async () => {
        let first: unknown;
        try {
          await unmountFilesystem(dir, { lazy: u.lazy ?? false });
        } catch (e) {
          first = e;
        }
        try {
          await detachLoop(loop.device);
        } catch (e) {
          first ??= e;
        }
        if (first) throw first;
      })();
      return done;
    },
  };
}
