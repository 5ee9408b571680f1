// The NBD wire protocol (fixed newstyle handshake, simple and structured replies), as constants and
// one encode/decode pair per message, following NetworkBlockDevice/nbd doc/proto.md.
// Not the server logic (see server.ts); all integers are big-endian on the wire.

/** Handshake magics. */
export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits). */
export const TF = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
} as const;

/** Options (client → server during haggling). */
export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

/** Option reply types; errors have bit 31 set. */
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 2 ** 31 + 1,
  ERR_POLICY: 2 ** 31 + 2,
  ERR_INVALID: 2 ** 31 + 3,
  ERR_PLATFORM: 2 ** 31 + 4,
  ERR_TLS_REQD: 2 ** 31 + 5,
  ERR_UNKNOWN: 2 ** 31 + 6,
  ERR_SHUTDOWN: 2 ** 31 + 7,
  ERR_BLOCK_SIZE_REQD: 2 ** 31 + 8,
  ERR_TOO_BIG: 2 ** 31 + 9,
} as const;

/** NBD_REP_INFO payload types. */
export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

/** Commands (transmission phase). */
export const CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

/** Command flags. */
export const CMD_FLAG = { FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3, FAST_ZERO: 1 << 4 } as const;

/** Structured reply chunk types and flags. */
export const REPLY_FLAG_DONE = 1;
export const REPLY_TYPE = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 2 ** 15 + 1,
  ERROR_OFFSET: 2 ** 15 + 2,
} as const;

/** Error values (proto.md "Error values"). */
export const NBD_ERR = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** base:allocation status flags. */
export const STATE_HOLE = 1;
export const STATE_ZERO = 2;
export const BASE_ALLOCATION = 'base:allocation';

/*
 * Layouts (offset: field), all big-endian:
 * server greeting (18): 0 u64 NBDMAGIC | 8 u64 IHAVEOPT | 16 u16 handshake flags
 * option request (16+n): 0 u64 IHAVEOPT | 8 u32 option | 12 u32 length | 16 data
 * option reply (20+n): 0 u64 OPT_REPLY_MAGIC | 8 u32 option | 12 u32 reply type | 16 u32 length | 20 data
 * request (28[+n]): 0 u32 REQUEST_MAGIC | 4 u16 flags | 6 u16 type | 8 u64 cookie | 16 u64 offset | 24 u32 length
 * simple reply (16): 0 u32 SIMPLE_REPLY_MAGIC | 4 u32 error | 8 u64 cookie
 * structured chunk (20+n): 0 u32 STRUCTURED_REPLY_MAGIC | 4 u16 flags | 6 u16 type | 8 u64 cookie | 16 u32 length
 */
export const GREETING_SIZE = 18;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const CHUNK_HEADER_SIZE = 20;

export function encodeGreeting(flags: number): Buffer {
  const b = Buffer.alloc(GREETING_SIZE);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(flags, 16);
  return b;
}

export interface OptionHeader {
  magic: bigint;
  option: number;
  length: number;
}

export function decodeOptionHeader(b: Buffer): OptionHeader {
  return { magic: b.readBigUInt64BE(0), option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export function encodeOptionReply(option: number, type: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(OPTION_REPLY_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(data.length, 16);
  b.set(data, OPTION_REPLY_HEADER_SIZE);
  return b;
}

export interface Request {
  flags: number;
  type: number;
  /** The client's handle, echoed verbatim. */
  cookie: bigint;
  offset: number;
  length: number;
}

export function decodeRequest(b: Buffer): Request & { magic: number } {
  const offset = b.readBigUInt64BE(16);
  return {
    magic: b.readUInt32BE(0),
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: b.readBigUInt64BE(8),
    // Offsets past 2^53 are rejected by bounds checks; keep them as an unsafe (huge) number.
    offset: Number(offset),
    length: b.readUInt32BE(24),
  };
}

export function encodeRequest(r: Request): Buffer {
  const b = Buffer.alloc(REQUEST_SIZE);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.cookie, 8);
  b.writeBigUInt64BE(BigInt(r.offset), 16);
  b.writeUInt32BE(r.length, 24);
  return b;
}

export function encodeSimpleReply(cookie: bigint, error: number): Buffer {
  const b = Buffer.alloc(SIMPLE_REPLY_SIZE);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
  return b;
}

/** A structured chunk header; the caller sends `length` payload bytes after it. */
export function encodeChunkHeader(cookie: bigint, flags: number, type: number, length: number): Buffer {
  const b = Buffer.alloc(CHUNK_HEADER_SIZE);
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(length, 16);
  return b;
}

/** NBD_REPLY_TYPE_ERROR payload: u32 error, u16 message length, message. */
export function encodeErrorChunk(cookie: bigint, error: number, message: string): Buffer {
  const msg = Buffer.from(message.slice(0, 1024));
  const b = Buffer.alloc(CHUNK_HEADER_SIZE + 6 + msg.length);
  encodeChunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE.ERROR, 6 + msg.length).copy(b, 0);
  b.writeUInt32BE(error, CHUNK_HEADER_SIZE);
  b.writeUInt16BE(msg.length, CHUNK_HEADER_SIZE + 4);
  msg.copy(b, CHUNK_HEADER_SIZE + 6);
  return b;
}

/** NBD_REPLY_TYPE_BLOCK_STATUS payload: u32 context id, then (u32 length, u32 flags) descriptors. */
export function encodeBlockStatusChunk(
  cookie: bigint,
  contextId: number,
  descriptors: { length: number; flags: number }[],
): Buffer {
  const len = 4 + 8 * descriptors.length;
  const b = Buffer.alloc(CHUNK_HEADER_SIZE + len);
  encodeChunkHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE.BLOCK_STATUS, len).copy(b, 0);
  b.writeUInt32BE(contextId, CHUNK_HEADER_SIZE);
  let p = CHUNK_HEADER_SIZE + 4;
  for (const d of descriptors) {
    b.writeUInt32BE(d.length, p);
    b.writeUInt32BE(d.flags, p + 4);
    p += 8;
  }
  return b;
}

/** NBD_REP_INFO / NBD_INFO_EXPORT payload: u16 type, u64 size, u16 transmission flags. */
export function encodeInfoExport(size: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(INFO.EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(flags, 10);
  return b;
}

/** NBD_INFO_BLOCK_SIZE payload: u16 type, u32 minimum, u32 preferred, u32 maximum. */
export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(INFO.BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

/** NBD_INFO_NAME / NBD_INFO_DESCRIPTION payload: u16 type, string. */
export function encodeInfoString(type: number, text: string): Buffer {
  const s = Buffer.from(text);
  const b = Buffer.alloc(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

/** NBD_REP_SERVER payload: u32 name length, name, description. */
export function encodeServerReply(name: string, description = ''): Buffer {
  const n = Buffer.from(name);
  const d = Buffer.from(description);
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

/** NBD_REP_META_CONTEXT payload: u32 context id, name. */
export function encodeMetaContextReply(id: number, name: string): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length);
  b.writeUInt32BE(id, 0);
  n.copy(b, 4);
  return b;
}

/** NBD_OPT_INFO / NBD_OPT_GO data: u32 name length, name, u16 count, u16 info types. */
export function decodeInfoRequest(data: Buffer): { name: string; infos: number[] } | undefined {
  if (data.length < 6) return undefined;
  const n = data.readUInt32BE(0);
  if (4 + n + 2 > data.length) return undefined;
  const name = data.subarray(4, 4 + n).toString();
  const count = data.readUInt16BE(4 + n);
  if (4 + n + 2 + 2 * count !== data.length) return undefined;
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(data.readUInt16BE(4 + n + 2 + 2 * i));
  return { name, infos };
}

/** NBD_OPT_{SET,LIST}_META_CONTEXT data: u32 name length, name, u32 count, (u32 length, query)*. */
export function decodeMetaContextRequest(data: Buffer): { name: string; queries: string[] } | undefined {
  if (data.length < 8) return undefined;
  const n = data.readUInt32BE(0);
  if (4 + n + 4 > data.length) return undefined;
  const name = data.subarray(4, 4 + n).toString();
  const count = data.readUInt32BE(4 + n);
  const queries: string[] = [];
  let p = 8 + n;
  for (let i = 0; i < count; i++) {
    if (p + 4 > data.length) return undefined;
    const len = data.readUInt32BE(p);
    if (p + 4 + len > data.length) return undefined;
    queries.push(data.subarray(p + 4, p + 4 + len).toString());
    p += 4 + len;
  }
  if (p !== data.length) return undefined;
  return { name, queries };
}
