// The daemon's wire protocol: one JSON request line per unix-socket connection, answered by one
// JSON response line, then the daemon closes the connection. Small on purpose: any language can
// speak it with `socat` (`echo '{"op":"ps"}' | socat - UNIX-CONNECT:/run/dadi/dadi.sock`).
//
//   → {"op":"mount","layers":[{"kind":"file","ref":"/l/base.tar"}],"target":"/mnt/x","rw":true}
//   ← {"ok":true,"result":{"id":"d-1a2b3c4d", ...}}
//   ← {"ok":false,"error":{"code":"ENOTFOUND","message":"/l/base.tar: cannot open: ..."}}

import type { DadiErrorCode } from '../errors.js';
import type { ReplayStats } from '../prefetch/trace-replay.js';
import type { TimedStep } from '../util/step-timer.js';

export type { ExportResult } from '../image/export-image.js';
export type { CacheReport } from '../image/host-cache.js';
export type { DaemonStatus } from './status.js';

import type { LayerSpec, MountedLayerInfo } from './layer-spec.js';

export const PROTOCOL_VERSION = 1;

export interface MountRequest {
  op: 'mount';
  /** Layers bottom first; plain strings are local layer file paths (absolute: the daemon's cwd is not yours). */
  layers: (string | LayerSpec)[];
  /** Where the filesystem is mounted (absolute; must exist). */
  target: string;
  /** Add a writable layer (ComboDevice over the stack) and mount read-write. */
  rw?: boolean;
  /**
   * The writable layer's files (rw only). Opened when they exist, created otherwise; they are kept
   * at umount. Without them an ephemeral layer in the device folder is deleted at umount.
   */
  writable?: { data: string; index: string };
  /**
   * The writable layer is deleted with the device (`dadi run --rm`): its syncs are skipped. An
   * ephemeral layer (no `writable` files) is always treated so.
   */
  discardable?: boolean;
  /** Free-form label shown by `ps` (e.g. the container name). */
  label?: string;
  /** Trace prefetch for this device (replay or record). */
  trace?: MountTraceRequest;
  /**
   * Paths in the image a start reads first (the command's candidates on PATH, /etc/passwd):
   * fetched with the ext4 metadata while the device mounts (prefetch/launch-files.ts).
   */
  launch?: LaunchRequest;
}

/** Bounds on the arguments a launch request carries: a few, each short (a `-c` one-liner). */
export const MAX_LAUNCH_ARGS = 16;
export const MAX_LAUNCH_ARG_LENGTH = 4096;

/** Paths in an image a start reads first: plain files, and the command's candidates (the first found runs). */
export interface LaunchRequest {
  files?: string[];
  exec?: string[];
  /**
   * Also read each file through the mounted filesystem once its bytes are fetched, so that the
   * kernel's caches hold it before the start reads it (export/read-through.ts): for a mount whose
   * start comes a while after it (containerd's), not for one whose start follows at once.
   */
  readThrough?: boolean;
  /** The command's arguments after the program (a python command's `-c` code names its imports). */
  args?: string[];
}

/** Trace prefetch of a device: the first that applies of acceleration layer, auto, record. */
export interface MountTraceRequest {
  /** Replay the trace in the image's acceleration layer (a registry layer spec). */
  accelerationLayer?: LayerSpec;
  /** Auto-trace: replay this host's stored trace of the image, or record and store one. */
  auto?: { image: string; manifestDigest: string };
  /** Record the lower layers' reads; the trace file is written here (absolute) at umount. */
  record?: string;
  /** Replay the trace in this file (absolute; one `record` wrote), e.g. the snapshotter's record-trace-path. */
  replay?: string;
  /** Replay workers (default 16). */
  workers?: number;
}

/** What a device's trace prefetch did (ps, umount). */
export interface DeviceTraceInfo {
  mode: 'replay' | 'record';
  source?: 'acceleration-layer' | 'auto-trace' | 'record-trace';
  replay?: ReplayStats;
  /** Record mode: reads recorded so far. */
  recorded?: number;
  warning?: string;
}

export type Request =
  | { op: 'ping' }
  | MountRequest
  /** Answers `{id, target, trace?}` (the trace prefetch's final counters). */
  | { op: 'umount' /** A target dir or a device id. */; target: string }
  | { op: 'ps' }
  /**
   * `trace`: the mount that follows replays the image's acceleration layer, if it has one (`dadi
   * run` without --no-trace): the daemon fetches that layer's trace as the manifest arrives.
   */
  | { op: 'resolve'; ref: string; platform?: string; trace?: boolean }
  /**
   * An image the client is about to resolve (`dadi run`/`mount` as they start): the daemon opens
   * connections to its registry now. Answers `{}` at once; nothing is reported.
   */
  | { op: 'preconnect'; ref: string }
  /**
   * Registry layers a mount will soon ask for (the snapshotter's pull knows them before its
   * Prepares): the daemon starts opening them now (their headers and indexes), and the mount
   * claims them. Answers `{opening: N}`; failures are the mount's to report.
   */
  | { op: 'open'; layers: (string | LayerSpec)[] }
  /**
   * Launch files for the device mounted (or being mounted) at `target`, fetched in the background
   * as a mount's `launch` is: the snapshotter's pull names them from the image's config, which
   * arrives after the image's mount started. Answers `{started: boolean}` (false: the device does
   * no ext4 prefetch).
   */
  | { op: 'launch'; target: string; launch: LaunchRequest }
  /** The block cache the daemon owns, after writing what it fetched: a CacheReport, or null without one. */
  | { op: 'cache' }
  /** The daemon's figures (`dadi status`, the same as its /metrics): a DaemonStatus (status.ts). */
  | { op: 'status' }
  | BrowseRequest
  | ExportRequest
  | { op: 'shutdown' };

/**
 * `dadi ls|stat|cat` run by the daemon through the cache it owns. Answers `{value, fetched}`
 * (image/browse.ts BrowseResult); `cat` first streams the file as data frames: a line
 * `{"data":N}` followed by N raw bytes, repeated, before the final answer line.
 */
export interface BrowseRequest {
  op: 'browse';
  what: 'ls' | 'stat' | 'cat';
  image: string;
  path: string;
  platform?: string;
}

/**
 * `dadi image export` (`image`) or `dadi layer export` (`layers`, bottom first) run by the daemon:
 * it writes `out` (absolute) itself, atomically, with the same checks as the CLI. Answers
 * `{stats, fetched, digest?, layers}`. Closing the connection before the answer cancels the export.
 */
export interface ExportRequest {
  op: 'export';
  out: string;
  image?: string;
  layers?: LayerSpec[];
  platform?: string;
}

export interface DeviceInfo {
  id: string;
  target: string;
  rw: boolean;
  layers: MountedLayerInfo[];
  writable?: { data: string; index: string; ephemeral: boolean };
  label?: string;
  /** The loop device the filesystem is mounted from. */
  loop: string;
  /** The exported FUSE file. */
  fuseFile: string;
  virtualSize: number;
  /** Bytes the kernel read / wrote through the FUSE export. */
  bytesRead: number;
  bytesWritten: number;
  /** How long the mount's steps took (open layers, writable layer, FUSE, loop, filesystem). */
  timings?: TimedStep[];
  createdAt: string;
  trace?: DeviceTraceInfo;
  /** Launch files read through the mount so far (LaunchRequest.readThrough): files, bytes, failures, their paths. */
  readThrough?: { files: number; bytes: number; failed: number; paths: string[] };
}

export interface PingResult {
  pid: number;
  /** The block cache directory the daemon owns (absent: none). */
  cacheDir?: string;
  version: number;
  stateDir: string;
  devices: number;
  /** The daemon's warm-up of its start path (runtime/warm-up.ts): absent when it runs none. */
  warmUp?: 'running' | 'done' | 'stopped';
}

export type Response<T = unknown> =
  | { ok: true; result: T }
  | { ok: false; error: { code: DadiErrorCode | string; message: string } };
