// A streaming tar reader for OCI layers: ustar, PAX (records kept as raw bytes, so binary
// SCHILY.xattr values survive), GNU long names/links. Checks header checksums and bounds every
// size before trusting it; never allocates by a header's say-so beyond small limits.

import { DadiError } from '../errors.js';
import type { Time } from './layout.js';

const BLOCK = 512;
/** Largest PAX or GNU long-name payload we buffer. */
export const MAX_META = 1 << 20;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'chr' | 'blk' | 'dir' | 'fifo';

export interface TarEntry {
  /** Path bytes exactly as in the archive. */
  path: Uint8Array;
  linkpath: Uint8Array;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Time;
  atime?: Time;
  ctime?: Time;
  devmajor: number;
  devminor: number;
  /** From SCHILY.xattr.* / LIBARCHIVE.xattr.* PAX records (raw value bytes). */
  xattrs: Map<string, Uint8Array>;
  /** The entry's data (consume before asking for the next entry, or it is skipped). */
  data(): AsyncGenerator<Uint8Array>;
}

/** Pull-based reader over an async byte stream. */
class Bytes {
  private queue: Uint8Array[] = [];
  private queued = 0;
  private ended = false;
  offset = 0;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.queued < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length) {
        this.queue.push(r.value);
        this.queued += r.value.length;
      }
    }
  }

  /** Exactly n bytes, or fewer only at end of stream. */
  async read(n: number): Promise<Uint8Array> {
    await this.fill(n);
    const take = Math.min(n, this.queued);
    const out = new Uint8Array(take);
    let o = 0;
    while (o < take) {
      const c = this.queue[0]!;
      const k = Math.min(c.length, take - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.queue.shift();
      else this.queue[0] = c.subarray(k);
    }
    this.queued -= take;
    this.offset += take;
    return out;
  }

  /** The next piece of at most n bytes (no copy); empty at end of stream. */
  async chunk(n: number): Promise<Uint8Array> {
    if (this.queued === 0) await this.fill(1);
    const c = this.queue[0];
    if (!c) return new Uint8Array(0);
    const k = Math.min(c.length, n);
    if (k === c.length) this.queue.shift();
    else this.queue[0] = c.subarray(k);
    this.queued -= k;
    this.offset += k;
    return c.subarray(0, k);
  }
}

function cstr(b: Uint8Array): Uint8Array {
  const z = b.indexOf(0);
  return z < 0 ? b : b.subarray(0, z);
}

function parseNumber(b: Uint8Array, what: string): number {
  if (b[0]! & 0x80) {
    if (b[0] === 0xff) throw new Error(`negative ${what}`);
    let v = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) {
      v = v * 256 + b[i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw new Error(`${what} out of range`);
    }
    return v;
  }
  const s = Buffer.from(cstr(b)).toString('latin1').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`bad ${what} field ${JSON.stringify(s)}`);
  const v = Number.parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw new Error(`${what} out of range`);
  return v;
}

function parseTime(s: string, what: string): Time {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) throw new Error(`bad PAX ${what} ${JSON.stringify(s)}`);
  const sec = Number(m[2]);
  const nsec = Number(`${m[3] ?? ''}000000000`.slice(0, 9));
  if (!Number.isSafeInteger(sec)) throw new Error(`PAX ${what} out of range`);
  if (m[1]) return nsec ? { sec: -sec - 1, nsec: 1e9 - nsec } : { sec: -sec, nsec: 0 };
  return { sec, nsec };
}

/** Parse PAX records into key → raw value bytes. */
export function parsePax(b: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let o = 0;
  while (o < b.length) {
    if (b[o] === 0) break; // trailing padding
    const sp = b.indexOf(0x20, o);
    if (sp < 0 || sp - o > 20) throw new Error('bad PAX record length');
    const len = Number(Buffer.from(b.subarray(o, sp)).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= sp - o + 1 || o + len > b.length || b[o + len - 1] !== 0x0a)
      throw new Error('bad PAX record');
    const rec = b.subarray(sp + 1, o + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new Error('PAX record without "="');
    out.set(Buffer.from(rec.subarray(0, eq)).toString('utf8'), rec.slice(eq + 1));
    o += len;
  }
  return out;
}

function checksumOk(h: Uint8Array, stored: number): boolean {
  let u = 0;
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    u += c;
    s += (c << 24) >> 24;
  }
  return stored === u || stored === s;
}

const TYPES: Record<string, TarType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chr',
  '4': 'blk',
  '5': 'dir',
  '6': 'fifo',
};

/**
 * Read the entries of a tar stream.
 * @example for await (const e of readTar(stream, 'layer.tar')) for await (const c of e.data()) use(c);
 */
export async function* readTar(source: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<TarEntry> {
  const r = new Bytes(source);
  let globalPax = new Map<string, Uint8Array>();
  let pax: Map<string, Uint8Array> | null = null;
  let longName: Uint8Array | null = null;
  let longLink: Uint8Array | null = null;
  const fail = (what: string, code: 'EFORMAT' | 'ECORRUPT' | 'ERANGE' = 'EFORMAT'): never => {
    throw new DadiError(code, `${name}: ${what}`);
  };
  for (;;) {
    const at = r.offset;
    const h = await r.read(BLOCK);
    if (h.length === 0) {
      if (pax || longName || longLink) fail('archive ends after an extended header');
      return; // no end-of-archive marker: tolerated, as GNU tar does
    }
    if (h.length < BLOCK) fail(`truncated header at byte ${at}`);
    if (h.every((x) => x === 0)) return;
    const rawName = cstr(h.subarray(0, 100));
    const label = JSON.stringify(Buffer.from(rawName).toString('utf8'));
    let stored: number;
    let size: number;
    try {
      stored = parseNumber(h.subarray(148, 156), 'checksum');
      size = parseNumber(h.subarray(124, 136), 'size');
    } catch (e) {
      return fail(`entry ${label} at byte ${at}: ${(e as Error).message}`);
    }
    if (!checksumOk(h, stored)) fail(`entry ${label} at byte ${at}: header checksum mismatch`, 'ECORRUPT');
    const flag = String.fromCharCode(h[156]!);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const readMeta = async (what: string): Promise<Uint8Array> => {
      if (size > MAX_META) fail(`entry ${label}: ${what} of ${size} bytes is too large`, 'ERANGE');
      const b = await r.read(padded);
      if (b.length < padded) fail(`truncated ${what} at byte ${at}`);
      return b.subarray(0, size);
    };
    if (flag === 'x' || flag === 'g') {
      let recs: Map<string, Uint8Array>;
      try {
        recs = parsePax(await readMeta('PAX header'));
      } catch (e) {
        if (e instanceof DadiError) throw e;
        return fail(`entry ${label} at byte ${at}: ${(e as Error).message}`);
      }
      if (flag === 'g') globalPax = new Map([...globalPax, ...recs]);
      else pax = recs;
      continue;
    }
    if (flag === 'L' || flag === 'K') {
      const v = cstr(await readMeta('GNU long name'));
      if (flag === 'L') longName = v;
      else longLink = v;
      continue;
    }
    const type = TYPES[flag];
    if (!type) {
      const what = flag === 'S' ? 'GNU sparse files' : `entry type ${JSON.stringify(flag)}`;
      fail(`entry ${label}: ${what} not supported`);
    }
    const magic = Buffer.from(h.subarray(257, 263)).toString('latin1');
    let path: Uint8Array = rawName;
    if (magic === 'ustar\0') {
      const prefix = cstr(h.subarray(345, 500));
      if (prefix.length) path = Buffer.concat([prefix, Buffer.from('/'), rawName]);
    }
    let linkpath: Uint8Array = cstr(h.subarray(157, 257));
    if (longName) path = longName;
    if (longLink) linkpath = longLink;
    const p = new Map([...globalPax, ...(pax ?? [])]);
    pax = longName = longLink = null;
    const xattrs = new Map<string, Uint8Array>();
    const str = (k: string) => {
      const v = p.get(k);
      return v === undefined ? undefined : Buffer.from(v).toString('utf8');
    };
    let e: TarEntry;
    try {
      if (p.has('path')) path = p.get('path')!;
      if (p.has('linkpath')) linkpath = p.get('linkpath')!;
      const num = (k: string, field: [number, number], what: string) => {
        const s = str(k);
        if (s !== undefined) {
          if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)))
            throw new Error(`bad PAX ${k} ${JSON.stringify(s)}`);
          return Number(s);
        }
        return parseNumber(h.subarray(field[0], field[1]), what);
      };
      if (p.has('size')) size = num('size', [124, 136], 'size');
      for (const [k, v] of p) {
        if (k.startsWith('SCHILY.xattr.')) xattrs.set(Buffer.from(k.slice(13), 'utf8').toString('latin1'), v);
        else if (k.startsWith('LIBARCHIVE.xattr.'))
          xattrs.set(
            Buffer.from(decodeURIComponent(k.slice(17)), 'utf8').toString('latin1'),
            Buffer.from(Buffer.from(v).toString('latin1'), 'base64'),
          );
        else if (k.startsWith('GNU.sparse.')) throw new Error('GNU sparse files not supported');
      }
      const mtimeS = str('mtime');
      e = {
        path,
        linkpath,
        type: type!,
        mode: parseNumber(h.subarray(100, 108), 'mode') & 0o7777,
        uid: num('uid', [108, 116], 'uid'),
        gid: num('gid', [116, 124], 'gid'),
        size: type === 'file' ? size : 0,
        mtime:
          mtimeS !== undefined
            ? parseTime(mtimeS, 'mtime')
            : { sec: parseNumber(h.subarray(136, 148), 'mtime'), nsec: 0 },
        devmajor: type === 'chr' || type === 'blk' ? num('SCHILY.devmajor', [329, 337], 'devmajor') : 0,
        devminor: type === 'chr' || type === 'blk' ? num('SCHILY.devminor', [337, 345], 'devminor') : 0,
        xattrs,
        data: async function* () {},
      };
      const at2 = str('atime');
      const ct = str('ctime');
      if (at2 !== undefined) e.atime = parseTime(at2, 'atime');
      if (ct !== undefined) e.ctime = parseTime(ct, 'ctime');
    } catch (err) {
      return fail(
        `entry ${JSON.stringify(Buffer.from(path).toString('utf8'))} at byte ${at}: ${(err as Error).message}`,
      );
    }
    // Data (a hardlink's or other type's size is skipped, as tar does).
    let left = size;
    const entryLabel = JSON.stringify(Buffer.from(path).toString('utf8'));
    if (e.type === 'file') {
      e.data = async function* () {
        while (left > 0) {
          const c = await r.chunk(Math.min(left, 1 << 20));
          if (c.length === 0) fail(`entry ${entryLabel}: archive truncated inside its data`);
          left -= c.length;
          yield c;
        }
      };
    }
    yield e;
    while (left > 0) {
      const c = await r.chunk(Math.min(left, 1 << 20));
      if (c.length === 0) fail(`entry ${entryLabel}: archive truncated inside its data`);
      left -= c.length;
    }
    const pad = padded - size;
    if (pad) {
      const b = await r.read(pad);
      if (b.length < pad) fail(`entry ${entryLabel}: archive truncated in padding`);
    }
  }
}
