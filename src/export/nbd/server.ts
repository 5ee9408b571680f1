// An NBD server for BlockFiles: fixed newstyle handshake, several named exports, structured replies
// with base:allocation block status, many requests in flight per connection (replies out of order,
// overlapping writes and reads kept in arrival order). Listens on a unix socket or loopback TCP.
// Not a TLS server (STARTTLS is refused) and not the owner of the BlockFiles: close them yourself.
//
// @example
//   const server = new NbdServer([{ name: 'disk', file, readOnly: false }]);
//   await server.listen({ socket: '/run/dadi/disk.sock' });
//   // qemu-img info nbd+unix:///disk?socket=/run/dadi/disk.sock
//   await server.close();

import { stat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { type BlockFile, hasExtents, isWritable, type WritableBlockFile } from '../../blockfile/index.js';
import { DadiError } from '../../errors.js';
import * as P from './protocol.js';
import { EndOfStream, SocketReader, writeAll } from './stream.js';

export interface NbdExport {
  /** The export name clients ask for; the first export also answers the empty name "". */
  name: string;
  file: BlockFile;
  /** Default true. `false` needs a WritableBlockFile. */
  readOnly?: boolean;
  description?: string;
}

export interface NbdServerOptions {
  /** Requests a connection may have in flight before the server stops reading more (default 64). */
  maxInFlight?: number;
  /** Largest READ/WRITE payload accepted (default 32 MiB, advertised as the maximum block size). */
  maxPayload?: number;
  /** Diagnostics (connection errors, protocol violations). */
  log?: (message: string) => void;
}

export type ListenTarget = { socket: string } | { port: number; host?: string };

const META_CONTEXT_ID = 1;
const MAX_OPTION_DATA = 1 << 20;
const MAX_DESCRIPTORS = 1 << 16;

export class NbdServer {
  private readonly exports = new Map<string, Required<NbdExport>>();
  private server: Server | undefined;
  private readonly conns = new Set<Connection>();
  private closing = false;
  readonly maxInFlight: number;
  readonly maxPayload: number;
  readonly log: (message: string) => void;

  constructor(exports: NbdExport[] = [], opts: NbdServerOptions = {}) {
    this.maxInFlight = opts.maxInFlight ?? 64;
    this.maxPayload = opts.maxPayload ?? 32 << 20;
    this.log = opts.log ?? (() => {});
    for (const e of exports) this.addExport(e);
  }

  /** Add (or replace) an export; affects only connections that negotiate afterwards. */
  addExport(e: NbdExport): void {
    const readOnly = e.readOnly ?? true;
    if (!readOnly && !isWritable(e.file)) {
      throw new DadiError('EINVAL', `NBD export "${e.name}": ${e.file.name} is not writable`);
    }
    if (Buffer.byteLength(e.name) > 4096) throw new DadiError('EINVAL', `NBD export name too long: ${e.name}`);
    this.exports.set(e.name, { name: e.name, file: e.file, readOnly, description: e.description ?? '' });
  }

  removeExport(name: string): boolean {
    return this.exports.delete(name);
  }

  /** Export names in the order added. */
  exportNames(): string[] {
    return [...this.exports.keys()];
  }

  /** @internal The export a client name selects ("" = the first one). */
  lookup(name: string): Required<NbdExport> | undefined {
    const e = this.exports.get(name);
    if (e || name !== '') return e;
    return this.exports.values().next().value;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Start listening. A stale unix socket file (nobody accepting) is replaced.
   * Resolves with the bound address (the port when TCP port 0 was asked).
   */
  async listen(target: ListenTarget): Promise<{ socket: string } | { port: number; host: string }> {
    if (this.server) throw new DadiError('EINVAL', 'NBD server already listening');
    const server = createServer((sock) => this.accept(sock));
    server.on('error', (e) => this.log(`nbd server: ${e.message}`));
    if ('socket' in target) {
      await removeStaleSocket(target.socket);
      await listenOn(server, () => server.listen(target.socket));
      this.server = server;
      return { socket: target.socket };
    }
    const host = target.host ?? '127.0.0.1';
    await listenOn(server, () => server.listen(target.port, host));
    this.server = server;
    const addr = server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : target.port, host };
  }

  /** Serve one already-connected socket (e.g. a socketpair or an accepted fd). */
  accept(sock: Socket): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    sock.setNoDelay?.(true);
    const conn = new Connection(this, sock);
    this.conns.add(conn);
    conn.run().finally(() => this.conns.delete(conn));
  }

  /**
   * Stop accepting, let every connection finish its in-flight requests (up to `graceMs`), then close
   * them. The unix socket file is removed. Safe to call twice.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    await Promise.all([...this.conns].map((c) => c.shutdown(graceMs)));
    await closed;
  }
}

function listenOn(server: Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      server.off('listening', onListening);
      reject(new DadiError('EIO', `NBD server: cannot listen: ${e.message}`, { cause: e }));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    start();
  });
}

async function removeStaleSocket(path: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw new DadiError('EEXIST', `NBD socket path ${path} exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new DadiError('EEXIST', `NBD socket ${path} is in use by another server`);
  await unlink(path);
}

/** Map an exception from a BlockFile to an NBD error value. */
export function nbdErrno(e: unknown): number {
  const code = (e as { code?: string })?.code;
  switch (code) {
    case 'ERANGE':
    case 'EINVAL':
      return P.NBD_ERR.EINVAL;
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return P.NBD_ERR.ENOSPC;
    case 'EPERM':
    case 'EACCES':
    case 'EROFS':
      return P.NBD_ERR.EPERM;
    case 'ENOMEM':
      return P.NBD_ERR.ENOMEM;
    default:
      return P.NBD_ERR.EIO;
  }
}

class NbdRequestError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** One request in flight, for ordering: writes wait for earlier overlapping requests, reads for earlier writes. */
interface InFlight {
  start: number;
  end: number;
  write: boolean;
  done: Promise<void>;
}

class Connection {
  private readonly reader: SocketReader;
  private structured = false;
  private noZeroes = false;
  private metaExport: string | undefined;
  private export: Required<NbdExport> | undefined;
  private exportSize = 0;
  private readOnly = true;
  private allocation = false;
  private readonly inflight = new Set<InFlight>();
  private slots: number;
  private slotWaiter: (() => void) | undefined;
  private stopping = false;
  private transmission = false;

  constructor(
    private readonly server: NbdServer,
    private readonly sock: Socket,
  ) {
    this.reader = new SocketReader(sock);
    this.slots = server.maxInFlight;
    sock.on('error', () => {});
  }

  async run(): Promise<void> {
    try {
      if (await this.handshake()) await this.transmit();
    } catch (e) {
      if (!(e instanceof EndOfStream) && !this.stopping) this.server.log(`nbd connection: ${(e as Error).message}`);
    } finally {
      await this.drain();
      this.sock.end();
      this.sock.destroySoon?.();
    }
  }

  async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    if (!this.transmission) {
      this.sock.destroy();
      return;
    }
    const timer = setTimeout(() => this.sock.destroy(), graceMs);
    // Unblock the request loop: it is waiting on the socket; ending our side makes the peer close.
    await this.drain();
    clearTimeout(timer);
    this.sock.destroy();
  }

  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight].map((f) => f.done));
  }

  // ---- handshake -------------------------------------------------------------------------------

  /** Option haggling; true when transmission starts. */
  private async handshake(): Promise<boolean> {
    await writeAll(this.sock, P.encodeGreeting(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES));
    const clientFlags = (await this.reader.read(4)).readUInt32BE(0);
    if (clientFlags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) {
      this.server.log(`nbd: unknown client flags 0x${clientFlags.toString(16)}`);
      return false;
    }
    this.noZeroes = (clientFlags & P.FLAG_C_NO_ZEROES) !== 0;
    for (;;) {
      const h = P.decodeOptionHeader(await this.reader.read(P.OPTION_HEADER_SIZE));
      if (h.magic !== P.IHAVEOPT) {
        this.server.log('nbd: bad option magic');
        return false;
      }
      if (h.length > MAX_OPTION_DATA) {
        this.server.log(`nbd: option ${h.option} data too large (${h.length} bytes)`);
        return false;
      }
      const data = await this.reader.read(h.length);
      const reply = (type: number, payload?: Uint8Array) =>
        writeAll(this.sock, P.encodeOptionReply(h.option, type, payload));
      const error = (type: number, message: string) => reply(type, Buffer.from(message));

      if (this.server.isClosing && h.option !== P.OPT.ABORT) {
        if (h.option === P.OPT.EXPORT_NAME) return false;
        await error(P.REP.ERR_SHUTDOWN, 'server shutting down');
        continue;
      }
      switch (h.option) {
        case P.OPT.EXPORT_NAME: {
          const e = this.server.lookup(data.toString());
          if (!e) return false; // the protocol has no way to refuse but to disconnect
          this.select(e);
          const b = Buffer.alloc(this.noZeroes ? 10 : 134);
          b.writeBigUInt64BE(BigInt(this.exportSize), 0);
          b.writeUInt16BE(this.transmissionFlags(), 8);
          await writeAll(this.sock, b);
          return true;
        }
        case P.OPT.ABORT:
          await reply(P.REP.ACK);
          return false;
        case P.OPT.LIST:
          if (data.length !== 0) {
            await error(P.REP.ERR_INVALID, 'NBD_OPT_LIST takes no data');
            break;
          }
          for (const name of this.server.exportNames()) {
            const e = this.server.lookup(name)!;
            await reply(P.REP.SERVER, P.encodeServerReply(name, e.description));
          }
          await reply(P.REP.ACK);
          break;
        case P.OPT.STRUCTURED_REPLY:
          if (data.length !== 0) await error(P.REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
          else {
            this.structured = true;
            await reply(P.REP.ACK);
          }
          break;
        case P.OPT.INFO:
        case P.OPT.GO: {
          const req = P.decodeInfoRequest(data);
          if (!req) {
            await error(P.REP.ERR_INVALID, 'malformed NBD_OPT_INFO/GO');
            break;
          }
          const e = this.server.lookup(req.name);
          if (!e) {
            await error(P.REP.ERR_UNKNOWN, `no export named "${req.name}"`);
            break;
          }
          const size = e.file.size;
          const flags = this.flagsFor(e);
          await reply(P.REP.INFO, P.encodeInfoExport(size, flags));
          if (req.infos.includes(P.INFO.NAME)) await reply(P.REP.INFO, P.encodeInfoString(P.INFO.NAME, e.name));
          if (req.infos.includes(P.INFO.DESCRIPTION) && e.description) {
            await reply(P.REP.INFO, P.encodeInfoString(P.INFO.DESCRIPTION, e.description));
          }
          await reply(P.REP.INFO, P.encodeInfoBlockSize(1, 4096, this.server.maxPayload));
          await reply(P.REP.ACK);
          if (h.option === P.OPT.GO) {
            this.select(e);
            return true;
          }
          break;
        }
        case P.OPT.LIST_META_CONTEXT:
        case P.OPT.SET_META_CONTEXT: {
          const set = h.option === P.OPT.SET_META_CONTEXT;
          if (!this.structured) {
            await error(P.REP.ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY first');
            break;
          }
          const req = P.decodeMetaContextRequest(data);
          if (!req) {
            await error(P.REP.ERR_INVALID, 'malformed meta context request');
            break;
          }
          if (!this.server.lookup(req.name)) {
            await error(P.REP.ERR_UNKNOWN, `no export named "${req.name}"`);
            break;
          }
          const match = (q: string) => q === P.BASE_ALLOCATION || (!set && (q === 'base:' || q === 'base' || q === ''));
          const wanted = req.queries.length === 0 ? !set : req.queries.some(match);
          if (set) {
            this.metaExport = wanted ? req.name : undefined;
          }
          if (wanted) await reply(P.REP.META_CONTEXT, P.encodeMetaContextReply(META_CONTEXT_ID, P.BASE_ALLOCATION));
          await reply(P.REP.ACK);
          break;
        }
        case P.OPT.STARTTLS:
          await error(P.REP.ERR_POLICY, 'TLS is not supported by this server');
          break;
        default:
          await error(P.REP.ERR_UNSUP, `option ${h.option} not supported`);
      }
    }
  }

  private select(e: Required<NbdExport>): void {
    this.export = e;
    this.exportSize = e.file.size;
    this.readOnly = e.readOnly;
    this.allocation = this.metaExport !== undefined && this.server.lookup(this.metaExport) === e;
    this.transmission = true;
  }

  private flagsFor(e: Required<NbdExport>): number {
    let f = P.TF.HAS_FLAGS | P.TF.SEND_FLUSH | P.TF.SEND_FUA | P.TF.CAN_MULTI_CONN;
    if (this.structured) f |= P.TF.SEND_DF;
    if (e.readOnly) f |= P.TF.READ_ONLY;
    else f |= P.TF.SEND_TRIM | P.TF.SEND_WRITE_ZEROES;
    return f;
  }

  private transmissionFlags(): number {
    return this.flagsFor(this.export!);
  }

  // ---- transmission ----------------------------------------------------------------------------

  private async transmit(): Promise<void> {
    for (;;) {
      await this.takeSlot();
      if (this.stopping) return;
      const r = P.decodeRequest(await this.reader.read(P.REQUEST_SIZE));
      if (r.magic !== P.REQUEST_MAGIC) {
        this.server.log('nbd: bad request magic, disconnecting');
        return;
      }
      let payload: Buffer | undefined;
      if (r.type === P.CMD.WRITE) {
        if (r.length > this.server.maxPayload) {
          this.server.log(`nbd: write of ${r.length} bytes exceeds the maximum, disconnecting`);
          return;
        }
        payload = await this.reader.read(r.length);
      }
      if (r.type === P.CMD.DISC) return;
      this.start(r, payload);
    }
  }

  private takeSlot(): Promise<void> {
    if (this.slots > 0) {
      this.slots--;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.slotWaiter = () => {
        this.slots--;
        resolve();
      };
    });
  }

  private releaseSlot(): void {
    this.slots++;
    const w = this.slotWaiter;
    this.slotWaiter = undefined;
    w?.();
  }

  /** Register the request's range synchronously (arrival order), then run it after its dependencies. */
  private start(r: P.Request, payload: Buffer | undefined): void {
    const write = r.type === P.CMD.WRITE || r.type === P.CMD.TRIM || r.type === P.CMD.WRITE_ZEROES;
    const flush = r.type === P.CMD.FLUSH;
    const start = flush ? 0 : r.offset;
    const end = flush ? Number.POSITIVE_INFINITY : r.offset + r.length;
    const deps: Promise<void>[] = [];
    for (const f of this.inflight) {
      if ((write || f.write) && f.start < end && start < f.end) deps.push(f.done);
    }
    let finish!: () => void;
    const entry: InFlight = { start, end, write: write || flush, done: new Promise((res) => (finish = res)) };
    this.inflight.add(entry);
    const go = async () => {
      if (deps.length) await Promise.all(deps);
      await this.execute(r, payload);
    };
    go()
      .catch((e) => this.server.log(`nbd: request failed: ${(e as Error).message}`))
      .finally(() => {
        this.inflight.delete(entry);
        finish();
        this.releaseSlot();
      });
  }

  private async execute(r: P.Request, payload: Buffer | undefined): Promise<void> {
    try {
      await this.dispatch(r, payload);
    } catch (e) {
      const errno = e instanceof NbdRequestError ? e.errno : nbdErrno(e);
      const msg = (e as Error).message ?? String(e);
      if (!(e instanceof NbdRequestError)) this.server.log(`nbd: ${this.export?.name}: ${msg}`);
      await this.replyError(r, errno, msg);
    }
  }

  private async dispatch(r: P.Request, payload: Buffer | undefined): Promise<void> {
    const e = this.export!;
    const file = e.file;
    const allowed: Record<number, number> = {
      [P.CMD.READ]: P.CMD_FLAG.FUA | P.CMD_FLAG.DF,
      [P.CMD.WRITE]: P.CMD_FLAG.FUA,
      [P.CMD.FLUSH]: 0,
      [P.CMD.TRIM]: P.CMD_FLAG.FUA,
      [P.CMD.WRITE_ZEROES]: P.CMD_FLAG.FUA | P.CMD_FLAG.NO_HOLE,
      [P.CMD.BLOCK_STATUS]: P.CMD_FLAG.REQ_ONE,
      [P.CMD.CACHE]: 0,
    };
    const mask = allowed[r.type];
    if (mask === undefined) throw new NbdRequestError(P.NBD_ERR.EINVAL, `unknown command ${r.type}`);
    if (r.flags & ~mask) throw new NbdRequestError(P.NBD_ERR.EINVAL, `flags 0x${r.flags.toString(16)} not valid`);
    const isWrite = r.type === P.CMD.WRITE || r.type === P.CMD.TRIM || r.type === P.CMD.WRITE_ZEROES;
    if (isWrite && this.readOnly) throw new NbdRequestError(P.NBD_ERR.EPERM, 'export is read-only');
    if (r.type !== P.CMD.FLUSH && r.offset + r.length > this.exportSize) {
      throw new NbdRequestError(
        isWrite ? P.NBD_ERR.ENOSPC : P.NBD_ERR.EINVAL,
        `range ${r.offset}+${r.length} is past the end of the export (${this.exportSize} bytes)`,
      );
    }
    switch (r.type) {
      case P.CMD.READ: {
        if (r.length > this.server.maxPayload) throw new NbdRequestError(P.NBD_ERR.EOVERFLOW, 'read too large');
        const buf = Buffer.allocUnsafe(r.length);
        const n = r.length ? await file.read(buf, r.offset) : 0;
        if (n !== r.length) throw new NbdRequestError(P.NBD_ERR.EIO, `short read at ${r.offset}`);
        if (this.structured) {
          if (r.length === 0) {
            await writeAll(this.sock, P.encodeChunkHeader(r.cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE.NONE, 0));
            return;
          }
          const h = P.encodeChunkHeader(r.cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE.OFFSET_DATA, 8 + r.length);
          const off = Buffer.alloc(8);
          off.writeBigUInt64BE(BigInt(r.offset));
          await writeAll(this.sock, h, off, buf);
        } else {
          await writeAll(this.sock, P.encodeSimpleReply(r.cookie, 0), buf);
        }
        return;
      }
      case P.CMD.WRITE: {
        const w = file as WritableBlockFile;
        if (payload!.length) await w.write(payload!, r.offset);
        if (r.flags & P.CMD_FLAG.FUA) await w.flush();
        break;
      }
      case P.CMD.TRIM:
      case P.CMD.WRITE_ZEROES: {
        const w = file as WritableBlockFile;
        if (r.type === P.CMD.WRITE_ZEROES && r.flags & P.CMD_FLAG.NO_HOLE) {
          const zeros = Buffer.alloc(Math.min(r.length, 1 << 20));
          for (let p = 0; p < r.length; p += zeros.length) {
            await w.write(zeros.subarray(0, Math.min(zeros.length, r.length - p)), r.offset + p);
          }
        } else if (r.length) {
          await w.discard(r.offset, r.length);
        }
        if (r.flags & P.CMD_FLAG.FUA) await w.flush();
        break;
      }
      case P.CMD.FLUSH:
        if (!this.readOnly) await (file as WritableBlockFile).flush();
        break;
      case P.CMD.CACHE:
        break;
      case P.CMD.BLOCK_STATUS: {
        if (!this.structured || !this.allocation) {
          throw new NbdRequestError(P.NBD_ERR.EINVAL, 'no metadata context negotiated');
        }
        if (r.length === 0) throw new NbdRequestError(P.NBD_ERR.EINVAL, 'empty block status request');
        const descs = await this.blockStatus(file, r.offset, r.length, (r.flags & P.CMD_FLAG.REQ_ONE) !== 0);
        await writeAll(this.sock, P.encodeBlockStatusChunk(r.cookie, META_CONTEXT_ID, descs));
        return;
      }
    }
    await this.replyOk(r);
  }

  private async blockStatus(
    file: BlockFile,
    offset: number,
    length: number,
    one: boolean,
  ): Promise<{ length: number; flags: number }[]> {
    if (!hasExtents(file)) return [{ length, flags: 0 }];
    const out: { length: number; flags: number }[] = [];
    const push = (len: number, flags: number) => {
      if (len <= 0) return;
      const last = out[out.length - 1];
      if (last && last.flags === flags) last.length += len;
      else out.push({ length: len, flags });
    };
    const end = offset + length;
    let pos = offset;
    for await (const x of file.extents(offset, length)) {
      const s = Math.max(x.offset, pos);
      const e = Math.min(x.offset + x.length, end);
      if (e <= s) continue;
      push(s - pos, P.STATE_HOLE | P.STATE_ZERO);
      push(e - s, 0);
      pos = e;
      if ((one && out.length > 0) || out.length >= MAX_DESCRIPTORS) break;
    }
    if (pos < end && !(one && out.length > 0) && out.length < MAX_DESCRIPTORS)
      push(end - pos, P.STATE_HOLE | P.STATE_ZERO);
    return one ? out.slice(0, 1) : out;
  }

  private replyOk(r: P.Request): Promise<void> {
    if (this.structured) {
      return writeAll(this.sock, P.encodeChunkHeader(r.cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE.NONE, 0));
    }
    return writeAll(this.sock, P.encodeSimpleReply(r.cookie, 0));
  }

  private replyError(r: P.Request, errno: number, message: string): Promise<void> {
    if (this.structured) return writeAll(this.sock, P.encodeErrorChunk(r.cookie, errno, message));
    return writeAll(this.sock, P.encodeSimpleReply(r.cookie, errno));
  }
}
