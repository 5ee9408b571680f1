// A FUSE filesystem holding one file (default `disk.img`) whose bytes are a BlockFile, in pure
// TypeScript over /dev/fuse: `mount -t fuse.dadi -o fd=3` with our /dev/fuse fd, then N reader loops
// each keep one `fs.read` pending on the device, so N requests are in flight. For a loop device on
// top (see ../loop.ts). Not a general filesystem: one directory, one file, fixed size.
//
// THREADPOOL: every pending read on /dev/fuse pins one libuv threadpool thread. The process must
// set UV_THREADPOOL_SIZE >= readers + 4 *before the threadpool starts* (in practice: in the
// environment of the launcher, e.g. `UV_THREADPOOL_SIZE=16 node dadi.js daemon`); `mount()` refuses
// otherwise. Never do blocking fs work on files *inside* the mounted image from the serving process
// with a small pool — run such work in another process (tests spawn the server as a child).
//
// @example
//   const fx = await FuseExport.mount(file, '/run/dadi/m1/fuse', { readOnly: true });
//   // losetup -f --show -r /run/dadi/m1/fuse/disk.img
//   await fx.unmount(); // lazy umount from this (still serving) process; loops end on ENODEV

import { close, open, read, writeSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type BlockFile, isWritable, type WritableBlockFile } from '../../blockfile/index.js';
import { DadiError } from '../../errors.js';
import { fetchLogNow, fetchLogOn, logFetch } from '../../util/fetch-log.js';
import { abortFuseConnection, runProgram } from '../system.js';
import * as A from './abi.js';

export interface FuseMountOptions {
  /** Default true. `false` needs a WritableBlockFile. */
  readOnly?: boolean;
  /** Name of the one file in the mount (default "disk.img"). */
  fileName?: string;
  /** Concurrent requests (pending reads on /dev/fuse); default 4. */
  readers?: number;
  /** How long unmount() waits for the kernel to release the connection before aborting it (default 5 s). */
  unmountTimeoutMs?: number;
  /**
   * Readahead of the mount's backing device info in KiB (default 1024; the kernel default is 128):
   * a loop device on the file reads through it, so bigger readahead means fewer, 1 MiB round trips.
   */
  readAheadKb?: number;
  /**
   * Default true: FLUSH and FSYNC make the writes durable (fdatasync of the writable layer). False
   * for a writable layer that is deleted when the device goes away (`dadi run --rm`, an ephemeral
   * `dadi mount --rw`): durability buys nothing there, and each sync costs a disk flush on the
   * launch path (ext4 syncs its superblock at a read-write mount).
   */
  durable?: boolean;
  /** Skip the UV_THREADPOOL_SIZE check (only if you know the pool is large enough). */
  skipThreadpoolCheck?: boolean;
  log?: (message: string) => void;
}

export interface FuseStats {
  requests: number;
  reads: number;
  writes: number;
  /** FLUSH and FSYNC requests on a writable export; `flushes`: those that synced (all, when durable). */
  syncs: number;
  flushes: number;
  bytesRead: number;
  bytesWritten: number;
  /** Most requests being handled at the same time. */
  maxInFlight: number;
}

const FILE_INO = 2;
const MAX_PAGES = 256; // 1 MiB READ/WRITE requests
const MAX_IO = MAX_PAGES * 4096;
const IN_BUF_SIZE = MAX_IO + 4096 * 2;
const ATTR_VALID_S = 3600;
const O_ACCMODE = 3;
const O_RDONLY = 0;

/** Requests answered before the exported file is open (the mount itself sends INIT). */
const WITHOUT_FILE = new Set<number>([A.OP.INIT, A.OP.FORGET, A.OP.BATCH_FORGET, A.OP.INTERRUPT, A.OP.DESTROY]);

/** The minimum UV_THREADPOOL_SIZE for `readers` FUSE readers (readers + 4 for the BlockFile and the rest). */
export function threadpoolNeeded(readers: number): number {
  return readers + 4;
}

export class FuseExport {
  readonly dir: string;
  /** Absolute path of the exported file inside the mount. */
  readonly path: string;
  readonly readOnly: boolean;
  readonly stats: FuseStats = {
    requests: 0,
    reads: 0,
    writes: 0,
    syncs: 0,
    flushes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    maxInFlight: 0,
  };
  /** Resolves when every reader loop has ended (after unmount, abort, or a fatal device error). */
  readonly done: Promise<void>;

  private readonly fileName: string;
  private readonly log: (m: string) => void;
  private readonly mountTime = Math.floor(Date.now() / 1000);
  private mounted = false;
  private stopping = false;
  private inFlight = 0;
  private minor = -1;
  private unmounting: Promise<void> | undefined;

  /** The exported file; set once `fileReady` resolves (requests on the file wait for it). */
  private file!: BlockFile;
  private readonly fileReady: Promise<void>;

  private constructor(
    file: BlockFile | Promise<BlockFile>,
    dir: string,
    private readonly fd: number,
    private readonly opts: Required<Pick<FuseMountOptions, 'readers' | 'unmountTimeoutMs'>> & FuseMountOptions,
  ) {
    this.dir = resolve(dir);
    this.fileName = opts.fileName ?? 'disk.img';
    this.path = `${this.dir}/${this.fileName}`;
    this.readOnly = opts.readOnly ?? true;
    this.log = opts.log ?? (() => {});
    this.fileReady = Promise.resolve(file).then((f) => {
      if (!this.readOnly && !isWritable(f)) {
        throw new DadiError('EINVAL', `FUSE export of ${f.name}: the file is not writable`);
      }
      this.file = f;
    });
    // Its failure is the mounter's to report (mountBlockFile awaits the file itself).
    this.fileReady.catch(() => {});
    const loops: Promise<void>[] = [];
    for (let i = 0; i < opts.readers; i++) loops.push(this.loop());
    this.done = Promise.all(loops).then(() => {});
  }

  /**
   * Mount `file` as `<dir>/<fileName>`; `dir` must exist and be empty (keep it deep in a private
   * folder). `file` may still be opening: the mount is made meanwhile, and requests that need the
   * file wait for it (they fail with EIO if it fails to open; the caller then unmounts).
   */
  static async mount(
    file: BlockFile | Promise<BlockFile>,
    dir: string,
    opts: FuseMountOptions = {},
  ): Promise<FuseExport> {
    const fx = await FuseExport.open(file, dir, opts);
    const r = await runProgram('mount', ['-i', '-n', '-t', 'fuse.dadi', '-o', fx.mountOptions, 'dadi', fx.dir], {
      stdio3: fx.fd,
      timeoutMs: 30_000,
    });
    if (r.code !== 0) {
      await fx.abandon();
      throw new DadiError('EIO', `FUSE mount on ${fx.dir} failed (exit ${r.code}): ${r.stderr.trim()}`);
    }
    await fx.attached();
    return fx;
  }

  /**
   * The export's connection, not mounted yet: its reader loops wait for the mount. Whoever mounts it
   * (`mount -t fuse.dadi -o MOUNTOPTIONS dadi DIR` with `fd` as the program's fd 3, e.g. in the
   * shell that then attaches the loop device: one fork instead of two) calls attached() once
   * mount(2) succeeded, or abandon() if it never will.
   */
  static async open(
    file: BlockFile | Promise<BlockFile>,
    dir: string,
    opts: FuseMountOptions = {},
  ): Promise<FuseExport> {
    const readers = opts.readers ?? 4;
    const readOnly = opts.readOnly ?? true;
    if (!(file instanceof Promise) && !readOnly && !isWritable(file)) {
      throw new DadiError('EINVAL', `FUSE export of ${file.name}: the file is not writable`);
    }
    if (!opts.skipThreadpoolCheck) {
      const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
      if (!(pool >= threadpoolNeeded(readers))) {
        throw new DadiError(
          'EINVAL',
          `FUSE export on ${resolve(dir)}: UV_THREADPOOL_SIZE is ${process.env.UV_THREADPOOL_SIZE ?? 'unset (4)'}, ` +
            `need >= ${threadpoolNeeded(readers)} for ${readers} readers; set it in the environment before Node starts`,
        );
      }
    }
    const fd = await new Promise<number>((res, rej) =>
      open('/dev/fuse', 'r+', (e, fd) =>
        e ? rej(new DadiError('EIO', `/dev/fuse: cannot open: ${e.message}`, { cause: e })) : res(fd),
      ),
    );
    return new FuseExport(file, dir, fd, { ...opts, readers, unmountTimeoutMs: opts.unmountTimeoutMs ?? 5000 });
  }

  /** The options for `mount -t fuse.dadi` (the /dev/fuse descriptor as the program's fd 3). */
  get mountOptions(): string {
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    return [
      'fd=3',
      'rootmode=40000',
      `user_id=${uid}`,
      `group_id=${gid}`,
      'allow_other',
      ...(this.readOnly ? ['ro'] : []),
    ].join(',');
  }

  /** The /dev/fuse descriptor (for the mounting program's fd 3). */
  get deviceFd(): number {
    return this.fd;
  }

  /**
   * mount(2) of this export succeeded: learn its connection (the mount's device number, from a
   * stat of the folder rather than the mount table) and set its read-ahead.
   */
  async attached(): Promise<void> {
    this.mounted = true;
    const st = await stat(this.dir).catch(() => undefined);
    if (!st) return;
    const major = Math.floor(st.dev / 256) & 0xfff;
    const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
    this.minor = minor;
    const ra = String(this.opts.readAheadKb ?? 1024);
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, ra).catch((e) =>
      this.log(`FUSE ${this.dir}: cannot set read_ahead_kb: ${(e as Error).message}`),
    );
  }

  /** The mount never happened: stop the reader loops and close the descriptor. */
  async abandon(): Promise<void> {
    this.stopping = true;
    await this.done;
    await new Promise<void>((res) => close(this.fd, () => res()));
  }

  /** The FUSE connection number (/sys/fs/fuse/connections/<n>), -1 if unknown. */
  get connection(): number {
    return this.minor;
  }

  /**
   * Detach lazily (`umount -l`) from this still-serving process, then wait for the kernel to drop the
   * connection (reader loops end on ENODEV). Anything still holding the file (a loop device) keeps the
   * connection alive: after `unmountTimeoutMs` the connection is aborted. Does not close the BlockFile.
   */
  unmount(): Promise<void> {
    this.unmounting ??= this.doUnmount();
    return this.unmounting;
  }

  /** Abort the connection now (emergency): pending and future requests fail with ENOTCONN/EIO. */
  async abort(): Promise<void> {
    if (this.minor >= 0) await abortFuseConnection(this.minor);
  }

  private async doUnmount(): Promise<void> {
    if (this.mounted) {
      const r = await runProgram('umount', ['-l', this.dir], { timeoutMs: 30_000 });
      if (r.code !== 0) this.log(`umount -l ${this.dir}: ${r.stderr.trim()}`);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((res) => {
        timer = setTimeout(() => res(false), this.opts.unmountTimeoutMs);
      });
      const ended = await Promise.race([this.done.then(() => true), timeout]);
      clearTimeout(timer);
      if (!ended) {
        this.log(`FUSE ${this.dir}: connection still in use after unmount; aborting it`);
        await this.abort().catch((e) => this.log(`abort: ${(e as Error).message}`));
      }
    }
    this.stopping = true;
    await this.done;
    await new Promise<void>((res) => close(this.fd, () => res()));
  }

  // ---- request loop ----------------------------------------------------------------------------

  private readDev(buf: Buffer): Promise<number> {
    return new Promise((res, rej) => read(this.fd, buf, 0, buf.length, null, (e, n) => (e ? rej(e) : res(n))));
  }

  private async loop(): Promise<void> {
    const inBuf = Buffer.allocUnsafe(IN_BUF_SIZE);
    const outBuf = Buffer.allocUnsafe(MAX_IO + 4096);
    for (;;) {
      if (this.stopping) return;
      let n: number;
      try {
        n = await this.readDev(inBuf);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPERM' && !this.mounted) {
          // Not attached to a mount yet: mount(8) is still running.
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue;
        if (code !== 'ENODEV') this.log(`FUSE ${this.dir}: read /dev/fuse: ${(e as Error).message}`);
        return;
      }
      if (n < A.IN_HEADER_SIZE) continue;
      this.inFlight++;
      if (this.inFlight > this.stats.maxInFlight) this.stats.maxInFlight = this.inFlight;
      // The fetch log has READs with their offsets (handle); the other requests by their opcode.
      const opcode = fetchLogOn ? inBuf.readUInt32LE(4) : A.OP.READ;
      const t0 = opcode !== A.OP.READ ? fetchLogNow() : 0;
      try {
        await this.handle(inBuf.subarray(0, n), outBuf);
        if (t0) logFetch({ k: 'fuse', blob: `op:${opcode}`, off: 0, len: 0, t0, t1: fetchLogNow() });
      } catch (e) {
        this.log(`FUSE ${this.dir}: ${(e as Error).message}`);
      } finally {
        this.inFlight--;
      }
    }
  }

  private reply(out: Buffer, unique: bigint, error: number, bodyLen = 0): void {
    A.encodeOutHeader(out, A.OUT_HEADER_SIZE + bodyLen, error ? -error : 0, unique);
    try {
      // A reply never blocks (the kernel copies it and wakes the requester), so a synchronous write
      // on the event loop is cheaper than a threadpool round trip and cannot be starved.
      writeSync(this.fd, out, 0, A.OUT_HEADER_SIZE + bodyLen);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted; ENODEV: the connection is gone.
      if (code !== 'ENOENT' && code !== 'ENODEV') this.log(`FUSE ${this.dir}: reply: ${(e as Error).message}`);
    }
  }

  private fileAttr(): A.Attr {
    return {
      ino: FILE_INO,
      size: this.file.size,
      mode: A.S_IFREG | (this.readOnly ? 0o444 : 0o644),
      nlink: 1,
      time: this.mountTime,
    };
  }

  private rootAttr(): A.Attr {
    return { ino: A.ROOT_ID, size: 0, mode: A.S_IFDIR | 0o755, nlink: 2, time: this.mountTime };
  }

  private attrOf(nodeid: bigint): A.Attr | undefined {
    if (nodeid === BigInt(A.ROOT_ID)) return this.rootAttr();
    if (nodeid === BigInt(FILE_INO)) return this.fileAttr();
    return undefined;
  }

  private async handle(req: Buffer, out: Buffer): Promise<void> {
    const h = A.decodeInHeader(req);
    const body = req.subarray(A.IN_HEADER_SIZE);
    const B = A.OUT_HEADER_SIZE;
    this.stats.requests++;
    if (!this.file && !WITHOUT_FILE.has(h.opcode)) {
      try {
        await this.fileReady;
      } catch {
        return this.reply(out, h.unique, A.ERRNO.EIO);
      }
    }
    switch (h.opcode) {
      case A.OP.INIT: {
        const init = A.decodeInitIn(body);
        if (init.major !== A.FUSE_KERNEL_VERSION) {
          this.log(`FUSE ${this.dir}: kernel protocol ${init.major}.${init.minor} unsupported`);
          return this.reply(out, h.unique, A.ERRNO.EPERM);
        }
        const want =
          A.INIT.ASYNC_READ | A.INIT.BIG_WRITES | A.INIT.MAX_PAGES | A.INIT.ASYNC_DIO | A.INIT.PARALLEL_DIROPS;
        A.encodeInitOut(out.subarray(B), {
          minor: Math.min(init.minor, A.FUSE_KERNEL_MINOR),
          maxReadahead: Math.min(init.maxReadahead, MAX_IO),
          flags: init.flags & want,
          maxBackground: 64,
          maxWrite: MAX_IO,
          maxPages: MAX_PAGES,
        });
        return this.reply(out, h.unique, 0, A.INIT_OUT_SIZE);
      }
      case A.OP.FORGET:
      case A.OP.BATCH_FORGET:
      case A.OP.INTERRUPT:
        return; // never answered
      case A.OP.DESTROY:
        return this.reply(out, h.unique, 0);
      case A.OP.LOOKUP: {
        const name = body.subarray(0, Math.max(0, body.indexOf(0))).toString();
        if (h.nodeid !== BigInt(A.ROOT_ID) || name !== this.fileName) return this.reply(out, h.unique, A.ERRNO.ENOENT);
        A.encodeEntryOut(out, B, this.fileAttr(), ATTR_VALID_S);
        return this.reply(out, h.unique, 0, A.ENTRY_OUT_SIZE);
      }
      case A.OP.GETATTR: {
        const a = this.attrOf(h.nodeid);
        if (!a) return this.reply(out, h.unique, A.ERRNO.ENOENT);
        A.encodeAttrOut(out, B, a, ATTR_VALID_S);
        return this.reply(out, h.unique, 0, A.ATTR_OUT_SIZE);
      }
      case A.OP.SETATTR: {
        const a = this.attrOf(h.nodeid);
        if (!a) return this.reply(out, h.unique, A.ERRNO.ENOENT);
        const s = A.decodeSetattrIn(body);
        if (s.valid & A.FATTR_SIZE && s.size !== a.size) {
          return this.reply(out, h.unique, this.readOnly ? A.ERRNO.EROFS : A.ERRNO.EPERM);
        }
        A.encodeAttrOut(out, B, a, ATTR_VALID_S);
        return this.reply(out, h.unique, 0, A.ATTR_OUT_SIZE);
      }
      case A.OP.OPEN: {
        if (h.nodeid !== BigInt(FILE_INO)) return this.reply(out, h.unique, A.ERRNO.ENOENT);
        const { flags } = A.decodeOpenIn(body);
        if (this.readOnly && (flags & O_ACCMODE) !== O_RDONLY) return this.reply(out, h.unique, A.ERRNO.EROFS);
        // Nobody else changes the file behind the kernel's back: keep its page cache across opens.
        A.encodeOpenOut(out, B, 0, A.FOPEN_KEEP_CACHE);
        return this.reply(out, h.unique, 0, A.OPEN_OUT_SIZE);
      }
      case A.OP.OPENDIR:
        if (h.nodeid !== BigInt(A.ROOT_ID)) return this.reply(out, h.unique, A.ERRNO.ENOENT);
        A.encodeOpenOut(out, B, 0, 0);
        return this.reply(out, h.unique, 0, A.OPEN_OUT_SIZE);
      case A.OP.READDIR: {
        const { offset, size } = A.decodeReadIn(body);
        const entries: [number, number, string][] = [
          [A.ROOT_ID, A.DT_DIR, '.'],
          [A.ROOT_ID, A.DT_DIR, '..'],
          [FILE_INO, A.DT_REG, this.fileName],
        ];
        let len = 0;
        for (let i = offset; i < entries.length; i++) {
          const [ino, type, name] = entries[i]!;
          if (len + A.direntSize(name) > size) break;
          len += A.encodeDirent(out, B + len, ino, i + 1, type, name);
        }
        return this.reply(out, h.unique, 0, len);
      }
      case A.OP.READ: {
        const { offset, size } = A.decodeReadIn(body);
        const want = Math.max(0, Math.min(size, MAX_IO, this.file.size - offset));
        const t0 = fetchLogOn ? fetchLogNow() : 0;
        let n = 0;
        try {
          if (want > 0) n = await this.file.read(out.subarray(B, B + want), offset);
        } catch (e) {
          this.log(`FUSE ${this.dir}: read ${offset}+${want} of ${this.file.name}: ${(e as Error).message}`);
          return this.reply(out, h.unique, A.ERRNO.EIO);
        }
        this.stats.reads++;
        this.stats.bytesRead += n;
        this.reply(out, h.unique, 0, n);
        if (fetchLogOn) logFetch({ k: 'fuse', blob: '', off: offset, len: n, t0, t1: fetchLogNow() });
        return;
      }
      case A.OP.WRITE: {
        if (this.readOnly) return this.reply(out, h.unique, A.ERRNO.EROFS);
        const { offset, size } = A.decodeWriteIn(body);
        if (offset + size > this.file.size) return this.reply(out, h.unique, A.ERRNO.ENOSPC);
        const data = body.subarray(A.WRITE_IN_SIZE, A.WRITE_IN_SIZE + size);
        try {
          await (this.file as WritableBlockFile).write(data, offset);
        } catch (e) {
          this.log(`FUSE ${this.dir}: write ${offset}+${size} to ${this.file.name}: ${(e as Error).message}`);
          const code = (e as { code?: string }).code;
          return this.reply(out, h.unique, code === 'ENOSPC' ? A.ERRNO.ENOSPC : A.ERRNO.EIO);
        }
        this.stats.writes++;
        this.stats.bytesWritten += size;
        out.writeUInt32LE(size, B);
        out.writeUInt32LE(0, B + 4);
        return this.reply(out, h.unique, 0, A.WRITE_OUT_SIZE);
      }
      case A.OP.FLUSH:
      case A.OP.FSYNC: {
        if (!this.readOnly) this.stats.syncs++;
        if (!this.readOnly && this.opts.durable !== false) {
          try {
            await (this.file as WritableBlockFile).flush();
            this.stats.flushes++;
          } catch (e) {
            this.log(`FUSE ${this.dir}: flush ${this.file.name}: ${(e as Error).message}`);
            return this.reply(out, h.unique, A.ERRNO.EIO);
          }
        }
        return this.reply(out, h.unique, 0);
      }
      case A.OP.RELEASE:
      case A.OP.RELEASEDIR:
      case A.OP.FSYNCDIR:
        return this.reply(out, h.unique, 0);
      case A.OP.STATFS:
        A.encodeStatfsOut(out, B, this.file.size);
        return this.reply(out, h.unique, 0, A.STATFS_OUT_SIZE);
      default:
        // GETXATTR, LISTXATTR, ACCESS, STATX, LSEEK, FALLOCATE, ...: ENOSYS makes the kernel stop
        // asking (or fall back) for the rest of the connection.
        return this.reply(out, h.unique, A.ERRNO.ENOSYS);
    }
  }
}
