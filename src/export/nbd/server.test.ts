import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryFile } from '../../blockfile/index.js';
import * as P from './protocol.js';
import { NbdServer } from './server.js';
import { SocketReader } from './stream.js';

/** A MemoryFile whose reads/writes wait `delay(offset)` ms first. */
class SlowFile extends MemoryFile {
  constructor(
    size: number,
    private readonly readDelay: (offset: number) => number,
    private readonly writeDelay: (offset: number) => number,
  ) {
    super(size, 'slow');
  }
  override async read(buf: Uint8Array, offset: number): Promise<number> {
    await new Promise((r) => setTimeout(r, this.readDelay(offset)));
    return super.read(buf, offset);
  }
  override async write(data: Uint8Array, offset: number): Promise<void> {
    const copy = Uint8Array.from(data);
    await new Promise((r) => setTimeout(r, this.writeDelay(offset)));
    return super.write(copy, offset);
  }
}

/** A bare-bones client that does not police flags, to see the server's own checks. */
class RawClient {
  private constructor(
    readonly sock: Socket,
    readonly r: SocketReader,
  ) {}

  static async open(path: string): Promise<RawClient> {
    const sock = connect(path);
    await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
    const c = new RawClient(sock, new SocketReader(sock));
    const g = await c.r.read(P.GREETING_SIZE);
    expect(g.readBigUInt64BE(0)).toBe(P.NBDMAGIC);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES);
    sock.write(flags);
    return c;
  }

  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<{ type: number; data: Buffer }[]> {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(P.IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.sock.write(Buffer.concat([h, data]));
    const replies: { type: number; data: Buffer }[] = [];
    for (;;) {
      const rh = await this.r.read(P.OPTION_REPLY_HEADER_SIZE);
      const type = rh.readUInt32BE(12);
      replies.push({ type, data: await this.r.read(rh.readUInt32BE(16)) });
      if (type !== P.REP.INFO && type !== P.REP.SERVER && type !== P.REP.META_CONTEXT) return replies;
    }
  }

  go(name: string) {
    const n = Buffer.from(name);
    const d = Buffer.alloc(6 + n.length);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    return this.option(P.OPT.GO, d);
  }

  send(type: number, offset: number, length: number, cookie: bigint, payload?: Buffer, flags = 0): void {
    this.sock.write(P.encodeRequest({ type, flags, cookie, offset, length }));
    if (payload) this.sock.write(payload);
  }

  /** One structured reply chunk. */
  async chunk(): Promise<{ cookie: bigint; type: number; flags: number; payload: Buffer }> {
    const h = await this.r.read(P.CHUNK_HEADER_SIZE);
    expect(h.readUInt32BE(0)).toBe(P.STRUCTURED_REPLY_MAGIC);
    return {
      flags: h.readUInt16BE(4),
      type: h.readUInt16BE(6),
      cookie: h.readBigUInt64BE(8),
      payload: await this.r.read(h.readUInt32BE(16)),
    };
  }

  close(): void {
    this.sock.destroy();
  }
}

describe('NbdServer (raw protocol)', () => {
  let tmp: string;
  let sock: string;
  let server: NbdServer;
  const slow = new SlowFile(
    1 << 20,
    (o) => (o === 0 ? 60 : 1),
    () => 40,
  );
  const ro = new MemoryFile(65536);

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'dadi-nbd-unit-'));
    sock = join(tmp, 's');
    server = new NbdServer([
      { name: 'slow', file: slow, readOnly: false },
      { name: 'ro', file: ro },
    ]);
    await server.listen({ socket: sock });
  });
  afterAll(async () => {
    await server.close();
    await rm(tmp, { recursive: true, force: true });
  });

  async function session(name: string): Promise<RawClient> {
    const c = await RawClient.open(sock);
    expect((await c.option(P.OPT.STRUCTURED_REPLY)).at(-1)!.type).toBe(P.REP.ACK);
    expect((await c.go(name)).at(-1)!.type).toBe(P.REP.ACK);
    return c;
  }

  it('answers an unknown export with NBD_REP_ERR_UNKNOWN and lets the client retry', async () => {
    const c = await RawClient.open(sock);
    expect((await c.go('missing')).at(-1)!.type).toBe(P.REP.ERR_UNKNOWN);
    expect((await c.option(999)).at(-1)!.type).toBe(P.REP.ERR_UNSUP);
    expect((await c.go('ro')).at(-1)!.type).toBe(P.REP.ACK);
    c.close();
  });

  it('replies out of order while keeping overlapping writes and reads in arrival order', async () => {
    const c = await session('slow');
    c.send(P.CMD.READ, 0, 4096, 1n); // slow (60 ms)
    c.send(P.CMD.READ, 8192, 4096, 2n); // fast
    const data = Buffer.alloc(4096, 0x5a);
    c.send(P.CMD.WRITE, 16384, 4096, 3n, data); // slow write (40 ms) ...
    c.send(P.CMD.READ, 16384, 4096, 4n); // ... so this read must wait for it
    const order: bigint[] = [];
    const reads = new Map<bigint, Buffer>();
    for (let i = 0; i < 4; i++) {
      const ch = await c.chunk();
      order.push(ch.cookie);
      if (ch.type === P.REPLY_TYPE.OFFSET_DATA) reads.set(ch.cookie, ch.payload.subarray(8));
    }
    expect(order[0]).toBe(2n);
    expect(order.indexOf(3n)).toBeLessThan(order.indexOf(4n));
    expect(reads.get(4n)!.every((b) => b === 0x5a)).toBe(true);
    c.close();
  });

  it('fails writes on a read-only export (EPERM), past the end (ENOSPC), reads past the end (EINVAL)', async () => {
    const c = await session('ro');
    c.send(P.CMD.WRITE, 0, 512, 10n, Buffer.alloc(512, 1));
    let ch = await c.chunk();
    expect([ch.cookie, ch.type, ch.payload.readUInt32BE(0)]).toEqual([10n, P.REPLY_TYPE.ERROR, P.NBD_ERR.EPERM]);
    c.send(P.CMD.READ, 65536 - 100, 200, 11n);
    ch = await c.chunk();
    expect([ch.cookie, ch.type, ch.payload.readUInt32BE(0)]).toEqual([11n, P.REPLY_TYPE.ERROR, P.NBD_ERR.EINVAL]);
    c.send(42, 0, 0, 12n);
    ch = await c.chunk();
    expect(ch.payload.readUInt32BE(0)).toBe(P.NBD_ERR.EINVAL);
    c.send(P.CMD.BLOCK_STATUS, 0, 4096, 13n);
    ch = await c.chunk();
    expect(ch.payload.readUInt32BE(0)).toBe(P.NBD_ERR.EINVAL); // no meta context negotiated
    c.close();
    expect(ro.bytes().every((b) => b === 0)).toBe(true);

    const w = await session('slow');
    w.send(P.CMD.WRITE, (1 << 20) - 10, 20, 20n, Buffer.alloc(20));
    ch = await w.chunk();
    expect(ch.payload.readUInt32BE(0)).toBe(P.NBD_ERR.ENOSPC);
    w.close();
  });

  it('NBD_CMD_DISC completes in-flight writes before closing', async () => {
    const c = await session('slow');
    c.send(P.CMD.WRITE, 65536, 4096, 30n, Buffer.alloc(4096, 0x77));
    c.send(P.CMD.DISC, 0, 0, 31n);
    await new Promise<void>((r) => c.sock.once('close', () => r()));
    expect(
      slow
        .bytes()
        .subarray(65536, 65536 + 4096)
        .every((b) => b === 0x77),
    ).toBe(true);
  });

  it('simple replies without structured negotiation (NBD_OPT_EXPORT_NAME)', async () => {
    const c = await RawClient.open(sock);
    const name = Buffer.from('ro');
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(P.IHAVEOPT, 0);
    h.writeUInt32BE(P.OPT.EXPORT_NAME, 8);
    h.writeUInt32BE(name.length, 12);
    c.sock.write(Buffer.concat([h, name]));
    const info = await c.r.read(10); // NO_ZEROES negotiated
    expect(Number(info.readBigUInt64BE(0))).toBe(65536);
    expect(info.readUInt16BE(8) & P.TF.READ_ONLY).toBeTruthy();
    c.send(P.CMD.READ, 0, 16, 40n);
    const rep = await c.r.read(P.SIMPLE_REPLY_SIZE + 16);
    expect(rep.readUInt32BE(0)).toBe(P.SIMPLE_REPLY_MAGIC);
    expect(rep.readUInt32BE(4)).toBe(0);
    expect(rep.readBigUInt64BE(8)).toBe(40n);
    c.close();
  });
});
