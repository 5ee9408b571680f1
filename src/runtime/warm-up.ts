// A new daemon serves its first `dadi run` on code V8 has never run: the registry client's manifest
// and blob paths, the layer blob's tar/ZFile/LSMT headers, jump table and index, the block cache,
// the trace replay, ext4 metadata reads and the launch-file lookups. Kept daemons run the same
// start 20-35 ms faster on the same cold block cache (bench/coldstart, cat, loopback and 1 Gbit/2 ms,
// a start run before and its cache cleared). So a new daemon runs that start once on an image of
// its own: a tiny DADI image built here with our own writers, served by a registry stand-in on a
// loopback port that exists only for it, read through a block cache in a temp folder. No mounts,
// nothing outside the process, no bytes from the real registry.
//
// It never delays a real request: it runs after the daemon listens, in steps, and stops at the
// next step once a client asks for work (`signal`). Failures only mean a start that is not warmed.

import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockFile } from '../blockfile/blockfile.js';
import { MemoryFile } from '../blockfile/memory.js';
import { MemorySink } from '../blockfile/sink.js';
import { Ext4, mkfs } from '../ext4/index.js';
import { WritableLayer } from '../format/lsmt/index.js';
import { TarWrapWriter } from '../format/tar/writer.js';
import { ZFileWriter } from '../format/zfile/writer.js';
import { type OpenedLayerBlob, openLayerBlob } from '../image/layer-blob.js';
import { DADI_LAYER_OUTPUT } from '../image/layer-output.js';
import { type OpenedLayerStack, openLayerStack } from '../image/layer-stack.js';
import { openRemoteContext, type RemoteContext } from '../image/remote-context.js';
import { resolveRunImage } from '../image/resolve-image.js';
import { sha256Of } from '../oci/digest.js';
import { MediaType, OverlaybdAnnotation, OverlaybdVersion } from '../oci/media-types.js';
import { accelerationLayerBlob, accelerationLayerDescriptor } from '../prefetch/accel-layer.js';
import { encodeTrace, type TraceRecord } from '../prefetch/trace-format.js';
import { encodeBlobRanges } from '../prefetch/trace-ranges.js';
import { TraceStore } from '../prefetch/trace-store.js';
import { MemoryRegistry, serveRoute } from '../registry/testing.js';
import { StepTimer } from '../util/step-timer.js';
import { loadAccelerationTrace, prepareDeviceTrace } from './device-trace.js';
import { layerBlobSourceOf } from './layer-source.js';
import { type LayerSpec, registryLayerSpecs } from './layer-spec.js';

/** Give up after this long: a warm-up that slow is not worth its CPU. */
export const WARM_UP_TIMEOUT_MS = 3_000;
/** The image's disk (mkfs writes only its metadata). */
const DISK_BYTES = 8 << 20;
/** One file of incompressible bytes, so that the blob outgrows the head fetch and reads go through ranged GETs and ZFile blocks. */
const BIG_FILE_BYTES = 384 << 10;
const REPO = 'dadi-warm-up';
const TAG = 'latest';
const LAUNCH_FILES = ['/etc/os-release', '/etc/passwd'];
const LAUNCH_EXEC = ['/usr/local/bin/warm', '/usr/bin/warm'];

export interface WarmUpOptions {
  /** Aborted when a client asks for work: the warm-up stops at its next step. */
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Messages about failures (the warm-up itself never throws). */
  log?: (message: string) => void;
  /** Told each step's name as it ends, before the warm-up checks whether to go on. */
  onStep?: (step: string) => void;
}

export interface WarmUpResult {
  /** Every step ran. */
  completed: boolean;
  /** Why it stopped early: 'client' (work arrived), 'timeout', or the failure's message. */
  stopped?: string;
  /** The steps that ran, with their times. */
  steps: { step: string; ms: number }[];
  /** Registry stand-in requests served (the real registry gets none). */
  requests: number;
}

/** Run a traced and a cold start's code paths once, on an image of its own; never throws. */
export async function warmStartPath(opts: WarmUpOptions = {}): Promise<WarmUpResult> {
  const timer = new StepTimer();
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? WARM_UP_TIMEOUT_MS);
  const cleanup: (() => Promise<unknown>)[] = [];
  let requests = 0;
  // Between steps and inside the longer ones' loops: stop at once when told.
  const check = () => {
    if (opts.signal?.aborted) throw new Stop('client');
    if (deadline.aborted) throw new Stop('timeout');
  };
  // Waits end as soon as it is told to stop (what was waited for is closed by the cleanup).
  let halt = () => {};
  const halted = new Promise<never>((_, reject) => {
    halt = () => {
      try {
        check();
      } catch (e) {
        reject(e);
      }
    };
  });
  halted.catch(() => {});
  opts.signal?.addEventListener('abort', halt);
  deadline.addEventListener('abort', halt);
  const until = <T>(p: Promise<T>): Promise<T> => Promise.race([p, halted]);
  const stopped = () => !!opts.signal?.aborted || deadline.aborted;
  const step = (name: string) => {
    timer.lap(name);
    opts.onStep?.(name);
    check();
  };
  try {
    check();
    const image = await buildImage(check);
    step('image');
    // What makes a resource is waited for whole, so that its cleanup is registered before any stop.
    const dir = await mkdtemp(join(scratchDir(), 'dadi-warm-up-'));
    cleanup.unshift(() => rm(dir, { recursive: true, force: true }));
    const registry = await serveImage(image, () => requests++);
    cleanup.unshift(() => registry.close());
    const ctx = await openRemoteContext({
      cacheDir: join(dir, 'cache'),
      cacheSize: 64 << 20,
      role: 'the dadi daemon warm-up',
      insecure: true,
      log: opts.log,
    });
    cleanup.unshift(() => ctx.close());
    step('context');
    const ref = `${registry.host}/${REPO}:${TAG}`;
    // A traced start: resolve (layers opened and the trace fetched as the manifest arrives), replay.
    const early = await until(resolveAndOpen(ref, ctx, cleanup, stopped));
    step('resolve');
    const trace = await until(
      prepareDeviceTrace(
        { accelerationLayer: early.accel },
        {
          remote: async () => ctx,
          store: new TraceStore(join(dir, 'traces')),
          log: () => {},
          early: () => early.trace,
        },
      ),
    );
    const traced = await until(
      openLayerStack(early.specs.map(layerBlobSourceOf), ctx, {
        ...trace?.stackOptions,
        opened: await until(Promise.all(early.opened)),
      }),
    );
    early.take();
    cleanup.unshift(() => traced.close());
    await until<unknown>(traced.replay?.done ?? Promise.resolve());
    await until(readFiles(traced.device, image.files, check));
    await traced.close();
    step('traced start');
    // A cold start: the same image through an empty cache, with the ext4 prefetch and the launch files.
    await until<unknown>(ctx.cache?.clear() ?? Promise.resolve());
    const again = await until(resolveAndOpen(ref, ctx, cleanup, stopped));
    const cold = await until(
      openLayerStack(again.specs.map(layerBlobSourceOf), ctx, {
        opened: await until(Promise.all(again.opened)),
        ext4Prefetch: { maxFileBytes: 1 << 20 },
      }),
    );
    again.take();
    cleanup.unshift(() => cold.close());
    await until(launchFiles(cold));
    await until(readFiles(cold.ext4?.watch(cold.device) ?? cold.device, image.files, check));
    await cold.close();
    step('cold start');
    return { completed: true, steps: timer.steps, requests };
  } catch (e) {
    const stopped = e instanceof Stop ? e.message : (e as Error).message;
    if (!(e instanceof Stop)) opts.log?.(`warm-up failed (the first start is not warmed): ${stopped}`);
    timer.lap('stopped');
    return { completed: false, stopped, steps: timer.steps, requests };
  } finally {
    opts.signal?.removeEventListener('abort', halt);
    deadline.removeEventListener('abort', halt);
    for (const c of cleanup) await c().catch(() => {});
  }
}

/** A memory-backed folder when there is one: the warm-up's cache writes and syncs reach no disk. */
function scratchDir(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

class Stop extends Error {}

/** Resolve as the daemon does, opening the layers and fetching the trace as soon as the manifest names them. */
async function resolveAndOpen(
  ref: string,
  ctx: RemoteContext,
  cleanup: (() => Promise<unknown>)[],
  stopped: () => boolean,
) {
  const early = {
    specs: [] as LayerSpec[],
    accel: undefined as LayerSpec | undefined,
    opened: [] as Promise<OpenedLayerBlob | undefined>[],
    trace: undefined as Promise<TraceRecord[] | undefined> | undefined,
    /** Set once a stack owns the opened layers. */
    taken: false,
  };
  // Until a stack takes them over, the layers are the warm-up's to close.
  cleanup.unshift(async () => {
    if (!early.taken) for (const o of await Promise.all(early.opened)) await o?.layer.close();
  });
  await resolveRunImage(ref, ctx, {
    timer: new StepTimer(),
    preconnect: true,
    onLayers: (img) => {
      // A resolve that outlived the warm-up (it was told to stop) opens nothing: its cache is closing.
      if (stopped()) return;
      early.specs = registryLayerSpecs(img.registry, img.repository, img.layers);
      const accel =
        img.accelerationLayer && registryLayerSpecs(img.registry, img.repository, [img.accelerationLayer])[0];
      early.accel = accel;
      // A failed open is the stack's to report (it opens the layer again).
      early.opened = early.specs.map((s) =>
        openLayerBlob(layerBlobSourceOf(s), ctx, { prefetch: [{ offset: 512, length: 8192 }] }).catch(() => undefined),
      );
      if (accel) early.trace = loadAccelerationTrace(accel.ref, accel, { remote: async () => ctx, log: () => {} });
    },
  });
  if (!early.accel) throw new Error('the warm-up image has no acceleration layer');
  return { ...early, accel: early.accel, take: () => (early.taken = true) };
}

/** The launch-file lookup over ext4 (what a mount asks for while the kernel mounts), waited for. */
async function launchFiles(stack: OpenedLayerStack): Promise<void> {
  const ext4 = stack.ext4;
  if (!ext4) return;
  const want = LAUNCH_FILES.length + 1;
  let got = 0;
  await new Promise<void>((done) => {
    const t = setTimeout(done, 500);
    ext4.launch({ files: LAUNCH_FILES, exec: LAUNCH_EXEC }, () => {
      if (++got >= want) {
        clearTimeout(t);
        done();
      }
    });
  });
}

/** Read every file of the image through our ext4 reader, as the kernel's reads would go; each must read back as written. */
async function readFiles(device: BlockFile, files: ReadonlyMap<string, Uint8Array>, check: () => void): Promise<void> {
  const fs = await Ext4.open(device);
  const buf = new Uint8Array(64 << 10);
  for (const [path, want] of files) {
    const ino = await fs.lookup(path, { follow: true });
    if (ino === undefined) throw new Error(`warm-up image: ${path} missing`);
    const { size } = await fs.stat(ino);
    if (size !== want.length) throw new Error(`warm-up image: ${path} has ${size} bytes, wrote ${want.length}`);
    for (let off = 0; off < size; off += buf.length) {
      check();
      const n = await fs.readIno(ino, buf, off);
      if (Buffer.compare(buf.subarray(0, n), want.subarray(off, off + n)) !== 0 || n === 0) {
        throw new Error(`warm-up image: ${path} reads back other bytes at ${off}`);
      }
    }
  }
}

interface WarmImage {
  manifest: Buffer;
  blobs: Map<string, Buffer>;
  /** The files in its filesystem, by path. */
  files: Map<string, Uint8Array>;
}

/** A one-layer DADI image (ext4 in LSMT in ZFile in tar, as convert writes it) with an acceleration layer. */
async function buildImage(check: () => void): Promise<WarmImage> {
  const data = new MemoryFile();
  const index = new MemoryFile();
  const rw = await WritableLayer.createIn(data, index, { virtualSize: DISK_BYTES });
  const raw = new MemorySink();
  const files = new Map<string, Uint8Array>();
  try {
    await mkfs(rw, { size: DISK_BYTES });
    check();
    const fs = await Ext4.open(rw);
    const dirs = new Map<string, number>([['/', 2]]);
    const mkdirs = async (path: string): Promise<number> => {
      const known = dirs.get(path);
      if (known !== undefined) return known;
      const cut = path.lastIndexOf('/');
      const parent = await mkdirs(path.slice(0, cut) || '/');
      const ino = await fs.mkdir(parent, path.slice(cut + 1), { mode: 0o755 });
      dirs.set(path, ino);
      return ino;
    };
    const file = async (path: string, bytes: Uint8Array, mode = 0o644) => {
      files.set(path, bytes);
      const cut = path.lastIndexOf('/');
      const w = await fs.createFile(await mkdirs(path.slice(0, cut) || '/'), path.slice(cut + 1), { mode });
      await w.write(bytes);
      await w.end();
    };
    await file('/etc/os-release', Buffer.from('PRETTY_NAME="dadi warm-up"\nID=dadi\n'));
    await file('/etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n'));
    // Not an ELF file: the launch lookup reads its head and finds no libraries to follow.
    await file(LAUNCH_EXEC[1]!, Buffer.from('#!/bin/sh\necho warm\n'), 0o755);
    await file('/usr/lib/data.bin', randomBytes(BIG_FILE_BYTES));
    await fs.close();
    check();
    await rw.commit(raw);
  } finally {
    await rw.close();
  }
  check();
  const lsmt = raw.bytes();
  const blob = new MemorySink();
  const zfile = new ZFileWriter(new TarWrapWriter(blob, { mode: 0o100644 }), {
    algorithm: DADI_LAYER_OUTPUT.zfile.algorithm,
    blockSize: DADI_LAYER_OUTPUT.zfile.blockSize,
    overwriteHeader: true,
    threads: 0,
  });
  await zfile.write(lsmt);
  await zfile.end();
  const layer = blob.bytes();
  const layerDigest = sha256Of(layer);
  // The replay reads the LSMT file's head and a stretch of its data.
  const records: TraceRecord[] = [
    { layer: 0, offset: 0, count: 4096 },
    { layer: 0, offset: Math.min(lsmt.length - 65536, 131072), count: 65536 },
  ];
  const accel = Buffer.from(accelerationLayerBlob(encodeTrace(records)));
  const accelDigest = sha256Of(accel);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: [LAUNCH_EXEC[1]] },
      rootfs: { type: 'layers', diff_ids: [layerDigest, accelDigest] },
    }),
  );
  const configDigest = sha256Of(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
      layers: [
        {
          mediaType: MediaType.ociLayer,
          digest: layerDigest,
          size: layer.length,
          annotations: {
            [OverlaybdAnnotation.blobDigest]: layerDigest,
            [OverlaybdAnnotation.blobSize]: String(layer.length),
            [OverlaybdAnnotation.version]: OverlaybdVersion.native,
          },
        },
        accelerationLayerDescriptor(
          { digest: accelDigest, size: accel.length },
          undefined,
          encodeBlobRanges([{ layer: 0, offset: 512, length: 8192 }]),
        ),
      ],
    }),
  );
  return {
    manifest,
    files,
    blobs: new Map<string, Buffer>([
      [layerDigest, layer],
      [accelDigest, accel],
      [configDigest, config],
    ]),
  };
}

/** The image over HTTP on a loopback port (the tests' in-memory registry): its tag, and its blobs with ranges. */
async function serveImage(
  image: WarmImage,
  counted: () => void,
): Promise<{ host: string; close: () => Promise<void> }> {
  const registry = new MemoryRegistry();
  for (const blob of image.blobs.values()) registry.putBlob(REPO, blob);
  registry.putManifest(REPO, image.manifest, MediaType.ociManifest, TAG);
  return serveRoute((req) => {
    counted();
    return registry.route(req);
  });
}
