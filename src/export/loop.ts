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
 * Attach and mount in one shell: the caller forks once instead of twice. A fork blocks the forking
 * process for as long as copying its page tables takes: ~15 ms for the daemon (its cold-start CPU
 * profile, bench/coldstart with DADI_BENCH_DAEMON_PROFILE), on the launch path, while the FUSE
 * requests of that same attach and mount wait for the daemon's one thread.
 * Args: file dir type options ro-flag dio read-ahead-kb. Prints the device once attached, then
 * mounts. Exit ATTACH_FAILED or READAHEAD_FAILED, or mount's own code (the device then detached).
 */
const ATTACH_AND_MOUNT = `f=$1 dir=$2 type=$3 opts=$4 ro=$5 dio=$6 ra=$7
dev=
if [ "$dio" = 1 ]; then dev=$(losetup -f --show $ro --direct-io=on "$f" 2>/dev/null) || dev=; fi
if [ -z "$dev" ]; then dev=$(losetup -f --show $ro "$f") || exit 90; fi
echo "$dev"
if [ -n "$ra" ]; then echo "$ra" >"/sys/block/\${dev#/dev/}/queue/read_ahead_kb" || { losetup -d "$dev"; exit 91; }; fi
mount -t "$type" -o "$opts" "$dev" "$dir" || { rc=$?; losetup -d "$dev"; exit $rc; }`;
const ATTACH_FAILED = 90;
const READAHEAD_FAILED = 91;

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
  let attached = false;
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
    ],
    {
      timeoutMs: 60_000,
      onStdout: () => {
        if (!attached) timer.lap('loop');
        attached = true;
      },
    },
  );
  const device = r.stdout.split('\n')[0]!.trim();
  const stderr = r.stderr.trim();
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
