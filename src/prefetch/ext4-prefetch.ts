// Metadata prefetch: when an image's layers are open, read in the background what mounting its
// ext4 and walking its paths will read — superblock and group descriptors, the used inode tables,
// every directory block (and, for a read-write mount, the backup superblocks the kernel reads) —
// through the stack and so into the block cache, in three dependent steps of parallel, coalesced
// reads instead of one round trip per directory level as the kernel would go. It runs while the
// FUSE export, loop device and mount are set up. Also keeps, from the inode tables, where each
// regular file's extents lie (fileExtentAt), for file-aware readahead. What it needs no bytes of
// (directory blocks, file readahead) it only fetches into the cache (prefetch(), undecoded): the
// kernel decodes it when it reads it, and the daemon's one thread stays free for the mount.
// What to read is ext4-metadata-plan.ts; not ext4 itself (src/ext4) nor the cache.

import type { BlockFile, WritableBlockFile } from '../blockfile/blockfile.js';
import { announceReads } from '../blockfile/observed.js';
import { prefetchRange } from '../blockfile/prefetch.js';
import { Ext4 } from '../ext4/fs.js';
import { fetchWhy } from '../util/fetch-log.js';
import {
  type ByteRange,
  backupSuperblocks,
  coalesce,
  decodeExtentNode,
  emptyScan,
  ext4Geometry,
  type FileExtent,
  type InodeScan,
  scanInodes,
  usedInodeTables,
} from './ext4-prefetch-plan.js';
import { type LaunchFiles, prefetchLaunchFiles } from './launch-files.js';
import { pythonCommand } from './py-command.js';
import { type PyImportOptions, PyImportPrefetch } from './py-imports.js';

export interface Ext4PrefetchOptions {
  /**
   * Also read what a read-write mount reads: the backup superblocks, when the superblock's
   * s_overhead_clusters is 0 (the kernel then rewrites them all). Default false.
   */
  writableMount?: boolean;
  /** Reads in flight (default 8). */
  parallel?: number;
  /** Inode table bytes read at most (default 8 MiB: 32 Ki inodes of 256 bytes). */
  maxInodeTableBytes?: number;
  /** Directory and extent-tree bytes read at most (default 8 MiB). */
  maxDirBytes?: number;
  /** Read the rest of a file extent of at most this many bytes when part of it is read (default DEFAULT_FILE_READAHEAD; 0: off). */
  maxFileBytes?: number;
  /**
   * When a file is first read, also fetch the files laid out right after it (the converter writes a
   * tar's files in order, so a directory's files are neighbours): at most this many (default
   * NEIGHBOUR_FILES; 0: off), each of at most `maxNeighbourFileBytes` and together at most
   * `maxNeighbourBytes` (device bytes) on each side.
   */
  neighbourFiles?: number;
  /** As neighbourFiles, for the files laid out before it (default NEIGHBOUR_FILES_BEFORE). */
  neighbourFilesBefore?: number;
  maxNeighbourFileBytes?: number;
  maxNeighbourBytes?: number;
  /**
   * What one dependent fetch costs now, in ms (the quickest small range GET of the stack's layers),
   * undefined before any: neighbours are fetched only while it is at least `neighbourMinRoundTripMs`
   * (default NEIGHBOUR_MIN_ROUND_TRIP_MS). Without this option they always are.
   */
  roundTripMs?: () => number | undefined;
  neighbourMinRoundTripMs?: number;
  /**
   * When the kernel reads the start of a Python .pyc, fetch the modules it imports (py-imports.ts)
   * with these bounds; false: off. Default on, gated as the neighbours are (pyImportMinRoundTripMs,
   * default PY_IMPORT_MIN_ROUND_TRIP_MS).
   */
  pyImports?: Omit<PyImportOptions, 'warm' | 'cancelled' | 'log'> | false;
  pyImportMinRoundTripMs?: number;
  /** Told about the first failure (the prefetch then stops; reads go on as without it). */
  log?: (message: string) => void;
}

export interface Ext4PrefetchStats {
  /** Reads done, and their bytes (uncompressed, device bytes). */
  reads: number;
  bytes: number;
  /** Directories and regular files found in the inode tables. */
  dirs: number;
  files: number;
  /** File readaheads started, and their bytes (part of reads/bytes). */
  fileReadaheads: number;
  fileReadaheadBytes: number;
  /** Neighbouring files fetched, and their bytes (part of reads/bytes). */
  neighbourFiles: number;
  neighbourBytes: number;
  /** Launch files fetched (libraries included), and their bytes (not part of reads/bytes). */
  launchFiles: number;
  launchBytes: number;
  /** Python modules fetched by the import prefetch, and their bytes (not part of reads/bytes). */
  pyFiles: number;
  pyBytes: number;
  /** Extension modules and their libraries fetched by the import prefetch, and their bytes (not part of reads/bytes). */
  pyElfFiles: number;
  pyElfBytes: number;
  failed: number;
  cancelled: boolean;
  finished: boolean;
  ms: number;
}

/** File extents up to this size are read whole once part of them is (libc-sized: one round trip, not three). */
export const DEFAULT_FILE_READAHEAD = 2 << 20;

/**
 * Launch files are fetched whole up to this size: a start maps its program and libraries and runs
 * through most of them. python3.11 (6.6 MB): with this bound, 5.08 of the 5.12 MB fetched were read
 * by the kernel, and the rest of the binary no longer came as demand reads at 1 Gbit/50 ms
 * (python cold start 6.16 -> 5.47-5.78 s, registry bytes unchanged; at 2 MiB, the file readahead bound).
 */
export const LAUNCH_FILE_BYTES = 8 << 20;

/**
 * Neighbouring files fetched on a file's first read (Ext4PrefetchOptions.neighbourFiles): python's
 * imports read one small .pyc after another, each a round trip, and the next ones often lie beside
 * it (a package's __pycache__, in the tar's order). Chosen by measurement (bench/coldstart, python
 * cold start, quiet, same holds, with the cache's 8 KiB demand blocks): 6 after and 2 before, each
 * of at most 48 KiB and 96 KiB a side, took 4.87-4.97 s at 1 Gbit/50 ms against 5.60-5.96 s without
 * (stargz 5.16-5.29 s), for 10.32-10.40 MB against 10.12-10.14 (stargz 10.49); at 100 Mbit/20 ms
 * and below the gain is within the noise. Larger neighbours (64 KiB) or more of them (16 after)
 * were faster still at 50 ms (4.4-4.8 s) but fetched 10.6-10.9 MB. cat fetched the same bytes.
 */
export const NEIGHBOUR_FILES = 6;
export const NEIGHBOUR_FILES_BEFORE = 2;
export const NEIGHBOUR_FILE_BYTES = 48 * 1024;
export const NEIGHBOUR_BYTES = 96 * 1024;
/**
 * Neighbours pay where a round trip costs: 1 Gbit/50 ms went 5.60-5.96 -> 4.87-4.97 s, 100 Mbit/20 ms
 * within the noise. On loopback and 1 Gbit/2 ms they bought no time (python, quiet, same hold, 3 runs
 * each: loopback 1.91-1.97 s with them, 1.89-2.24 s without; 2 ms 1.75-2.39 vs 1.96-2.57) but
 * cost 0.43 MB (10.35 vs 9.92 MB). The quickest small GET there took 4.2 and 5.7 ms (the
 * registry reading a blob whose page cache was dropped), at 100 Mbit/20 ms 24.7 ms.
 */
export const NEIGHBOUR_MIN_ROUND_TRIP_MS = 15;
/** The python import prefetch runs while a small GET costs at least this (ms); 0: always. */
export const PY_IMPORT_MIN_ROUND_TRIP_MS = 0;
/** A neighbour lies at most this far from the file next to it (else the run of files has ended). */
const NEIGHBOUR_GAP = 64 * 1024;

/** Probe read: the superblock and, for up to ~500 groups of 64-byte descriptors, the whole table. */
const HEAD_PROBE = 64 * 1024;
/** Gap between directory blocks still read as one range, and the largest such range. */
const MERGE_GAP = 32 * 1024;
const MAX_RANGE = 1 << 20;
/** Inode table reads in flight at once (a flex_bg image has one small used part per group). */
const MAX_TABLE_READS = 32;

export class Ext4Prefetch {
  /** Resolves when the metadata prefetch has stopped (finished, failed or cancelled); never rejects. */
  readonly done: Promise<Ext4PrefetchStats>;
  private readonly s: Ext4PrefetchStats = {
    reads: 0,
    bytes: 0,
    dirs: 0,
    files: 0,
    fileReadaheads: 0,
    fileReadaheadBytes: 0,
    neighbourFiles: 0,
    neighbourBytes: 0,
    launchFiles: 0,
    launchBytes: 0,
    pyFiles: 0,
    pyBytes: 0,
    pyElfFiles: 0,
    pyElfBytes: 0,
    failed: 0,
    cancelled: false,
    finished: false,
    ms: 0,
  };
  private readonly started = Date.now();
  private cancelled = false;
  /** Regular files' extents, sorted by offset (empty until the inode tables are read). */
  private files: FileExtent[] = [];
  private readonly py?: PyImportPrefetch;
  /** Offsets of the file extents already read ahead (each once). */
  private readonly readAhead = new Set<number>();
  private readonly background = new Set<Promise<unknown>>();
  /** Resolves once the inode tables are read (or the metadata prefetch stopped before). */
  private readonly tables: Promise<void>;
  private tablesRead!: () => void;
  /**
   * The ext4 reader the launch-file lookups and Python's imports share (opened by the first), with
   * what it decoded: both look in the same library folders.
   */
  private fs?: Promise<Ext4>;

  constructor(
    private readonly device: BlockFile,
    private readonly opts: Ext4PrefetchOptions = {},
  ) {
    this.tables = new Promise((r) => (this.tablesRead = r));
    if (opts.pyImports !== false)
      this.py = new PyImportPrefetch(device, {
        ...opts.pyImports,
        cancelled: () => this.cancelled,
        log: opts.log,
        fs: () => this.ext4(),
        warm: async (offset, length) => {
          if (this.cancelled) return;
          // What file readahead would fetch again when the kernel reads these files.
          const ext = this.fileExtentAt(offset);
          if (ext) this.readAhead.add(ext.offset);
          await prefetchRange(this.device, offset, length);
        },
        fetched: (offset) => this.readAhead.has(offset),
      });
    this.done = fetchWhy('ext4-meta', () => this.run())
      .catch((e) => {
        if (this.s.failed++ === 0)
          this.opts.log?.(`metadata prefetch of ${device.name} stopped: ${(e as Error).message}`);
      })
      .then(() => {
        this.tablesRead();
        this.s.finished = true;
        this.s.ms = Date.now() - this.started;
        return this.stats();
      });
  }

  stats(): Ext4PrefetchStats {
    if (this.py) {
      this.s.pyFiles = this.py.stats.files;
      this.s.pyBytes = this.py.stats.bytes;
      this.s.pyElfFiles = this.py.stats.elfFiles;
      this.s.pyElfBytes = this.py.stats.elfBytes;
    }
    return { ...this.s, ms: this.s.finished ? this.s.ms : Date.now() - this.started };
  }

  /** Take no more reads (metadata or file readahead); resolves once the reads in flight have settled. */
  async cancel(): Promise<Ext4PrefetchStats> {
    if (!this.s.finished) this.s.cancelled = true;
    this.cancelled = true;
    await this.done;
    // None may read after the layers close.
    while (this.background.size) await Promise.all(this.background);
    return this.stats();
  }

  /** `file` (the stack's device, or a writable device over it), with its reads starting file readahead. */
  watch(file: WritableBlockFile): WritableBlockFile;
  watch(file: BlockFile): BlockFile;
  watch(file: BlockFile): BlockFile {
    return announceReads(file, (offset, length) => this.willRead(offset, length));
  }

  /**
   * A read of [offset, offset + length) of the device is starting: when it lies in a file extent
   * of at most `maxFileBytes` and does not cover it, read the rest of the extent in the background.
   */
  willRead(offset: number, length: number): void {
    if (this.cancelled || !this.files.length) return;
    const i = this.fileIndexAt(offset);
    const ext = i < 0 ? undefined : this.files[i]!;
    if (ext?.lblk === 0 && ext.offset === offset) this.fileStart(ext);
    if (!ext || ext.length > (this.opts.maxFileBytes ?? DEFAULT_FILE_READAHEAD) || this.readAhead.has(ext.offset))
      return;
    this.readAhead.add(ext.offset);
    // The parts before and after the read: the read fetches its own part, not waiting for the rest.
    // Each runs on over the neighbouring files (one range, so one request where the layer stores
    // them together).
    const after = offset + length;
    const far = this.roundTripsCost();
    const start = far ? this.neighbours(i, -1, ext.offset) : ext.offset;
    const fileEnd = Math.max(after, ext.offset + ext.length);
    const end = far ? this.neighbours(i, 1, fileEnd) : fileEnd;
    const parts = [
      { offset: start, length: offset - start },
      { offset: after, length: end - after },
    ].filter((r) => r.length > 0);
    if (!parts.length) return;
    // After the read's own fetches have started: they go first.
    const p = new Promise<void>((r) => setImmediate(r))
      .then(() => {
        if (this.cancelled) return;
        for (const r of parts) {
          this.s.fileReadaheads++;
          this.s.fileReadaheadBytes += r.length;
          this.inBackground('file-readahead', r);
        }
      })
      .finally(() => this.background.delete(p));
    this.background.add(p);
  }

  /** The kernel reads the start of a file: if it is a .pyc, its imports are fetched (after the read's own fetch starts). */
  private fileStart(ext: FileExtent): void {
    const py = this.py;
    if (!py || !this.roundTripsCost(this.opts.pyImportMinRoundTripMs ?? PY_IMPORT_MIN_ROUND_TRIP_MS)) return;
    const p = new Promise<void>((r) => setImmediate(r))
      .then(() => (this.cancelled ? undefined : fetchWhy('py-imports', () => py.fileStart(ext.ino, ext.offset))))
      .finally(() => this.background.delete(p));
    this.background.add(p);
  }

  /** Whether a round trip costs enough for neighbours (Ext4PrefetchOptions.roundTripMs). */
  private roundTripsCost(min = this.opts.neighbourMinRoundTripMs ?? NEIGHBOUR_MIN_ROUND_TRIP_MS): boolean {
    if (!this.opts.roundTripMs) return true;
    const ms = this.opts.roundTripMs();
    return ms !== undefined && ms >= min;
  }

  /**
   * Where the run of files next to file extent `i` on the device ends (dir 1: the files after it,
   * dir -1: those before; a directory's files, as a tar lays them out): the nearest few small ones,
   * adjacent, not read ahead yet, within the byte bound. `edge` (the file's own end or start) if none.
   */
  private neighbours(i: number, dir: 1 | -1, edge: number): number {
    const count =
      dir > 0
        ? (this.opts.neighbourFiles ?? NEIGHBOUR_FILES)
        : (this.opts.neighbourFilesBefore ?? NEIGHBOUR_FILES_BEFORE);
    const maxFile = this.opts.maxNeighbourFileBytes ?? NEIGHBOUR_FILE_BYTES;
    let budget = this.opts.maxNeighbourBytes ?? NEIGHBOUR_BYTES;
    for (let j = i + dir, n = 0; n < count && j >= 0 && j < this.files.length; j += dir, n++) {
      const next = this.files[j]!;
      const gap = dir > 0 ? next.offset - edge : edge - (next.offset + next.length);
      if (gap < 0 || gap > NEIGHBOUR_GAP || next.length > maxFile || next.length > budget) break;
      if (this.readAhead.has(next.offset)) break;
      this.readAhead.add(next.offset);
      budget -= next.length;
      edge = dir > 0 ? next.offset + next.length : next.offset;
      this.s.neighbourFiles++;
      this.s.neighbourBytes += next.length;
    }
    return edge;
  }

  /** Fetch `r` into the cache in the background (cancel() waits for it), tagged `why` in the fetch log. */
  private inBackground(why: string, r: ByteRange): void {
    const p = fetchWhy(why, () => this.warm(r))
      .catch((e) => {
        if (this.s.failed++ === 0) this.opts.log?.(`${why} in ${this.device.name}: ${(e as Error).message}`);
      })
      .finally(() => this.background.delete(p));
    this.background.add(p);
  }

  /** The regular file extent holding device byte `offset`, once the inode tables are read. */
  fileExtentAt(offset: number): FileExtent | undefined {
    const i = this.fileIndexAt(offset);
    return i < 0 ? undefined : this.files[i];
  }

  /** Index in `files` of the extent holding device byte `offset`, or -1. */
  private fileIndexAt(offset: number): number {
    const f = this.files;
    let lo = 0;
    let hi = f.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = f[mid]!;
      if (offset < r.offset) hi = mid - 1;
      else if (offset >= r.offset + r.length) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  private async run(): Promise<void> {
    // Step 1: superblock and group descriptors.
    let head = await this.read({ offset: 0, length: Math.min(HEAD_PROBE, this.device.size) });
    const geo = head && ext4Geometry(head.subarray(1024, 2048));
    if (!head || !geo) return;
    if (geo.headBytes > head.length) {
      const rest = await this.read({ offset: head.length, length: geo.headBytes - head.length });
      if (!rest) return;
      head = Buffer.concat([head, rest]);
    }
    // Step 2: the used inode tables (and the backup superblocks a read-write mount rewrites), in parallel.
    const tables = usedInodeTables(geo, head, this.opts.maxInodeTableBytes ?? 8 << 20);
    const scan: InodeScan = emptyScan();
    // Only when the superblock leaves the overhead for the kernel to compute: with it stored (dadi's
    // mkfs, recent mke2fs) the mount reads no backup, and prefetching them cost every cold start two
    // GETs nobody read (8 KiB: fetch log of `cat /etc/os-release`, 1 Gbit/50 ms).
    const backups = this.opts.writableMount && geo.overheadClusters === 0 ? backupSuperblocks(geo) : [];
    const tableAt = (r: ByteRange) => tables.find((x) => x.offset === r.offset);
    // All at once: a few tables more than `parallel` would cost the whole chain another round trip.
    await this.readAll(
      [...tables, ...backups],
      (r) => !!tableAt(r),
      (r, bytes) => {
        const t = tableAt(r);
        if (t) scanInodes(geo, bytes, t.firstIno, scan);
      },
      MAX_TABLE_READS,
    );
    this.files = scan.fileExtents.sort((a, b) => a.offset - b.offset);
    this.s.files = scan.fileExtents.length;
    this.tablesRead();
    this.s.dirs = scan.dirBlocks.length + scan.dirTrees.length;
    // Step 3: every directory block and file extent-tree block; trees of big directories walked.
    // Only the ranges holding a big directory's index block are read here; the rest is fetched
    // into the cache undecoded, for the kernel to read.
    const maxDir = this.opts.maxDirBytes ?? 8 << 20;
    const treeLeaves: ByteRange[] = [];
    const trees = scan.dirTrees.flatMap((t) =>
      (decodeExtentNode(t.iblock)?.entries ?? []).map((e) => ({
        offset: e.pblk * geo.blockSize,
        length: geo.blockSize,
      })),
    );
    const holdsTree = (r: ByteRange) => trees.some((t) => t.offset >= r.offset && t.offset < r.offset + r.length);
    await this.readAll(
      coalesce([...scan.dirBlocks, ...scan.fileTreeBlocks, ...trees], MERGE_GAP, MAX_RANGE, maxDir),
      holdsTree,
      (r, bytes) => {
        // An index block of a big directory: its leaves name more directory blocks (one level a step).
        for (const t of trees) {
          if (t.offset < r.offset || t.offset >= r.offset + r.length) continue;
          const node = decodeExtentNode(bytes.subarray(t.offset - r.offset, t.offset - r.offset + geo.blockSize));
          if (node?.depth === 0) {
            for (const e of node.entries)
              treeLeaves.push({ offset: e.pblk * geo.blockSize, length: e.len * geo.blockSize });
          }
        }
      },
    );
    if (treeLeaves.length) await this.readAll(coalesce(treeLeaves, MERGE_GAP, MAX_RANGE, maxDir), () => false);
    // The directories are in the cache now: list the python ones before python starts (py-imports.ts),
    // in the background, so that its first .pyc read needs no listing first.
    const py = this.py;
    if (py && !this.cancelled) {
      const p = fetchWhy('py-imports', () => py.prepare()).finally(() => this.background.delete(p));
      this.background.add(p);
    }
  }

  /**
   * Fetch the files a start reads first (launch-files.ts) in the background, once the inode tables
   * are in (their lookups then read only directory blocks, which step 3 fetches too; the cache
   * merges the two). The daemon asks as soon as the layers are open, so that these lookups run
   * while the kernel mounts the filesystem. cancel() waits for them. `onFetched` is told each
   * file's path once its bytes are in the cache.
   */
  launch(launch: LaunchFiles, onFetched?: (path: string) => void): void {
    const p = this.tables
      .then(() =>
        this.cancelled ? undefined : fetchWhy('launch-files', () => this.fetchLaunchFiles(launch, onFetched)),
      )
      .finally(() => this.background.delete(p));
    this.background.add(p);
    // A python command: its imports are fetched once the directories are in, before python runs
    // (its first .pyc read would start them one round trip or more later: py-imports.ts).
    const py = this.py;
    const cmd = py && pythonCommand(launch.exec?.[0], launch.args ?? []);
    if (!py || !cmd) return;
    const q = this.done
      .then(() =>
        this.cancelled || !this.roundTripsCost(this.opts.pyImportMinRoundTripMs ?? PY_IMPORT_MIN_ROUND_TRIP_MS)
          ? undefined
          : fetchWhy('py-imports', () => py.startPython(cmd)),
      )
      .finally(() => this.background.delete(q));
    this.background.add(q);
  }

  /** The shared ext4 reader; a failed open is tried again by the next user, not remembered. */
  private ext4(): Promise<Ext4> {
    this.fs ??= Ext4.open(this.device);
    return this.fs.catch((e) => {
      this.fs = undefined;
      throw e;
    });
  }

  private fetchLaunchFiles(launch: LaunchFiles, onFetched?: (path: string) => void): Promise<void> {
    return prefetchLaunchFiles(this.device, launch, {
      fs: this.ext4(),
      maxFileBytes: Math.max(this.opts.maxFileBytes ?? 0, LAUNCH_FILE_BYTES),
      cancelled: () => this.cancelled,
      onFetched,
      warm: async (offset, length) => {
        if (this.cancelled) return;
        // What file readahead would fetch again when the kernel reads these files.
        const ext = this.fileExtentAt(offset);
        if (ext) this.readAhead.add(ext.offset);
        await prefetchRange(this.device, offset, length);
      },
    })
      .then((s) => {
        // Over all launches of the device (the snapshotter asks twice).
        this.s.launchFiles += s.files;
        this.s.launchBytes += s.bytes;
      })
      .catch((e) => {
        if (this.s.failed++ === 0) this.opts.log?.(`launch files of ${this.device.name}: ${(e as Error).message}`);
      });
  }

  /**
   * Read `ranges` with `parallel` reads in flight; `use` sees the bytes of each range `wanted`
   * says it needs; the other ranges are only fetched into the cache (warm).
   */
  private async readAll(
    ranges: ByteRange[],
    wanted: (r: ByteRange) => boolean,
    use: (r: ByteRange, bytes: Buffer) => void = () => {},
    parallel = this.opts.parallel ?? 8,
  ): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (!this.cancelled && next < ranges.length) {
        const r = ranges[next++]!;
        if (!wanted(r)) {
          await this.warm(r);
          continue;
        }
        const bytes = await this.read(r);
        if (bytes) use(r, bytes);
      }
    };
    const n = Math.max(1, Math.min(parallel, ranges.length));
    await Promise.all(Array.from({ length: n }, worker));
  }

  /** Fetch a range of the device into the cache below without decoding it (counted as a read). */
  private async warm(r: ByteRange): Promise<void> {
    if (this.cancelled) return;
    const length = Math.max(0, Math.min(r.length, this.device.size - r.offset));
    if (length === 0) return;
    await prefetchRange(this.device, r.offset, length);
    this.s.reads++;
    this.s.bytes += length;
  }

  /** One read of the device, clipped to its end; undefined once cancelled. */
  private async read(r: ByteRange): Promise<Buffer | undefined> {
    if (this.cancelled) return undefined;
    const length = Math.max(0, Math.min(r.length, this.device.size - r.offset));
    if (length === 0) return Buffer.alloc(0);
    const buf = Buffer.allocUnsafe(length);
    const n = await this.device.read(buf, r.offset);
    this.s.reads++;
    this.s.bytes += n;
    return buf.subarray(0, n);
  }
}
