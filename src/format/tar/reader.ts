// A streaming reader of the tar archives OCI layers are made of: ustar, PAX (records kept as raw
// bytes, so binary SCHILY.xattr values survive; size, path, linkpath, uid, gid, times and device
// numbers honoured), GNU long names/links. Headers go through the one codec (header.ts) in strict
// mode; every size is bounded before anything is allocated by it. Not an extractor: see ext4/apply.

import { DadiError } from '../../errors.js';
import { encodePosixAcl, parseAclText } from '../posix-acl.js';
import {
  decodeTarHeader,
  hexHead,
  isTarExtension,
  type PaxRecords,
  paxNumber,
  paxText,
  paxTime,
  quoteTarName,
  TAR_BLOCK,
  TAR_MAX_EXTENSION_SIZE,
  TarExtensions,
  type TarHeader,
  type TarNumberField,
  type TarTime,
  TarTypeflag,
} from './header.js';
import {
  checkSparseMap,
  gnuSparseExtension,
  gnuSparseHeader,
  MAX_SPARSE_REGIONS,
  paxSparse,
  type SparseInfo,
  SparseMapReader,
  type SparseRegion,
} from './sparse.js';

/** What a layer entry is (its typeflag, decoded). */
export type TarEntryKind = 'file' | 'hardlink' | 'symlink' | 'chr' | 'blk' | 'dir' | 'fifo';

export interface TarEntry {
  /** Path bytes exactly as in the archive (after PAX / GNU long-name overrides). */
  path: Uint8Array;
  linkpath: Uint8Array;
  kind: TarEntryKind;
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes of a regular file (0 for every other kind). */
  size: number;
  mtime: TarTime;
  atime?: TarTime;
  ctime?: TarTime;
  devmajor: number;
  devminor: number;
  /** From SCHILY.xattr.* / LIBARCHIVE.xattr.* PAX records (name as a latin1 byte string, raw value bytes). */
  xattrs: Map<string, Uint8Array>;
  /**
   * A sparse file's data regions (GNU or PAX sparse members), in order: `data()` yields their
   * bytes back to back, `size` is the file's real size and the rest are holes.
   */
  sparse?: SparseRegion[];
  /** The entry's data (consume before asking for the next entry, or it is skipped). */
  data(): AsyncGenerator<Uint8Array>;
}

const KINDS: Record<string, TarEntryKind> = {
  [TarTypeflag.REGULAR]: 'file',
  [TarTypeflag.REGULAR_OLD]: 'file',
  [TarTypeflag.CONTIGUOUS]: 'file',
  [TarTypeflag.GNU_SPARSE]: 'file',
  [TarTypeflag.HARDLINK]: 'hardlink',
  [TarTypeflag.SYMLINK]: 'symlink',
  [TarTypeflag.CHR]: 'chr',
  [TarTypeflag.BLK]: 'blk',
  [TarTypeflag.DIR]: 'dir',
  [TarTypeflag.FIFO]: 'fifo',
};

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

  /** Exactly n bytes (n ≤ TAR_MAX_EXTENSION_SIZE + a block), or fewer only at end of stream. */
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

  /** Pass over n bytes; false if the stream ended first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      const c = await this.chunk(Math.min(n, 1 << 20));
      if (c.length === 0) return false;
      n -= c.length;
    }
    return true;
  }
}

const padded = (size: number) => Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;

/**
 * Read the entries of a tar stream; errors are DadiErrors naming `name`, the entry and its offset.
 * @example for await (const e of readTar(stream, 'layer.tar')) for await (const c of e.data()) use(c);
 */
export async function* readTar(source: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<TarEntry> {
  const r = new Bytes(source);
  const ext = new TarExtensions();
  const fail = (what: string, code: 'EFORMAT' | 'ECORRUPT' | 'ERANGE' = 'EFORMAT'): never => {
    throw new DadiError(code, `${name}: ${what}`);
  };
  for (;;) {
    const at = r.offset;
    const block = await r.read(TAR_BLOCK);
    if (block.length === 0) {
      if (ext.pending) fail('archive ends after an extended header');
      return; // no end-of-archive marker: tolerated, as GNU tar does
    }
    if (block.length < TAR_BLOCK) fail(`truncated header at byte ${at}`);
    const h = decodeTarHeader(block, { strict: true });
    if (h.zero) return;
    const label = quoteTarName(h.name);
    if (!h.checksumOk) {
      if (at === 0) fail(`not a tar archive: bad header checksum at byte 0 (it starts with ${hexHead(block)})`);
      fail(`entry ${label} at byte ${at}: header checksum mismatch`, 'ECORRUPT');
    }
    if (isTarExtension(h.typeflag)) {
      const what =
        h.typeflag === TarTypeflag.PAX || h.typeflag === TarTypeflag.PAX_GLOBAL ? 'PAX header' : 'GNU long name';
      const size = h.size;
      if (size === undefined) fail(`entry ${label} at byte ${at}: bad size field`);
      if (size! > TAR_MAX_EXTENSION_SIZE) fail(`entry ${label}: ${what} of ${size} bytes is too large`, 'ERANGE');
      const b = await r.read(padded(size!));
      if (b.length < padded(size!)) fail(`truncated ${what} at byte ${at}`);
      try {
        ext.add(h.typeflag, b.subarray(0, size));
      } catch (e) {
        if (e instanceof DadiError) fail(`entry ${label} at byte ${at}: ${e.message}`);
        throw e;
      }
      continue;
    }
    const kind = KINDS[h.typeflag];
    if (!kind) fail(`entry ${label}: entry type ${JSON.stringify(h.typeflag)} not supported`);
    let e: TarEntry;
    let dataSize: number;
    let entryLabel = label;
    try {
      const gnuSparse = h.typeflag === TarTypeflag.GNU_SPARSE ? await readGnuSparseMap(block, r) : undefined;
      const member = ext.take(h);
      entryLabel = quoteTarName(member.path);
      ({ entry: e, dataSize } = entryOf(h, kind!, member));
      const sparse = gnuSparse ?? paxSparse(member.records, member.recordList);
      if (sparse) {
        if (sparse.name) entryLabel = quoteTarName((e.path = sparse.name));
        if (e.kind !== 'file') throw new DadiError('EFORMAT', 'sparse map on a member that is not a file');
        let regions = sparse.regions;
        if (!regions) {
          // PAX 1.0: the map is the first blocks of the data.
          const map = new SparseMapReader();
          for (let done = false; !done; ) {
            if (map.bytes + TAR_BLOCK > dataSize) throw new DadiError('EFORMAT', 'sparse map runs past the data');
            const b = await r.read(TAR_BLOCK);
            if (b.length < TAR_BLOCK) throw new DadiError('EFORMAT', 'archive truncated inside the sparse map');
            done = map.feed(b);
          }
          dataSize -= map.bytes;
          regions = map.regions;
        }
        e.sparse = checkSparseMap(regions, sparse.realSize, dataSize);
        e.size = sparse.realSize;
      }
    } catch (err) {
      if (err instanceof DadiError) fail(`entry ${entryLabel} at byte ${at}: ${err.message}`);
      throw err;
    }
    // The data a header announces is skipped for every kind but a file (as tar does); its length
    // is the PAX size when there is one (≥ 8 GiB files have it), never the ustar field alone.
    let left = dataSize;
    const truncated = () => fail(`entry ${entryLabel}: archive truncated inside its data`);
    if (e.kind === 'file') {
      e.data = async function* () {
        while (left > 0) {
          const c = await r.chunk(Math.min(left, 1 << 20));
          if (c.length === 0) truncated();
          left -= c.length;
          yield c;
        }
      };
    }
    yield e;
    if (!(await r.skip(left))) truncated();
    left = 0;
    const pad = padded(dataSize) - dataSize;
    if (pad && (await r.read(pad)).length < pad) fail(`entry ${entryLabel}: archive truncated in padding`);
  }
}

/** The regions of an old GNU sparse header and the extension blocks after it (bounded in number). */
async function readGnuSparseMap(block: Uint8Array, r: Bytes): Promise<SparseInfo> {
  const { regions, extended, realSize } = gnuSparseHeader(block);
  const maxBlocks = Math.ceil(MAX_SPARSE_REGIONS / 21);
  for (let more = extended, n = 0; more; n++) {
    if (n >= maxBlocks) throw new DadiError('ERANGE', `more than ${maxBlocks} sparse extension headers`);
    const b = await r.read(TAR_BLOCK);
    if (b.length < TAR_BLOCK) throw new DadiError('EFORMAT', 'archive truncated in a sparse extension header');
    more = gnuSparseExtension(b, regions);
  }
  return { regions, realSize };
}

/**
 * The entry a member header describes, with the PAX overrides applied, and the length of the
 * data that follows its header (EFORMAT when malformed).
 */
function entryOf(
  h: TarHeader,
  kind: TarEntryKind,
  member: ReturnType<TarExtensions['take']>,
): { entry: TarEntry; dataSize: number } {
  const p = member.records;
  const headerNumber = (f: TarNumberField): number => {
    const v = h[f];
    if (v === undefined) throw new DadiError('EFORMAT', `bad ${f} field`);
    return v;
  };
  const num = (key: string, f: TarNumberField) => paxNumber(p, key) ?? headerNumber(f);
  const device = kind === 'chr' || kind === 'blk';
  const dataSize = num('size', 'size');
  const e: TarEntry = {
    path: member.path,
    linkpath: member.linkpath,
    kind,
    mode: headerNumber('mode') & 0o7777,
    uid: num('uid', 'uid'),
    gid: num('gid', 'gid'),
    size: kind === 'file' ? dataSize : 0,
    mtime: paxTime(p, 'mtime') ?? { sec: headerNumber('mtime'), nsec: 0 },
    devmajor: device ? num('SCHILY.devmajor', 'devmajor') : 0,
    devminor: device ? num('SCHILY.devminor', 'devminor') : 0,
    xattrs: xattrsOf(p),
    data: async function* () {},
  };
  const atime = paxTime(p, 'atime');
  const ctime = paxTime(p, 'ctime');
  if (atime) e.atime = atime;
  if (ctime) e.ctime = ctime;
  return { entry: e, dataSize };
}

const ACL_TEXT_RECORDS = [
  ['SCHILY.acl.access', 'system.posix_acl_access'],
  ['SCHILY.acl.default', 'system.posix_acl_default'],
] as const;

function xattrsOf(p: PaxRecords): Map<string, Uint8Array> {
  const xattrs = new Map<string, Uint8Array>();
  for (const [k, v] of p) {
    if (k.startsWith('SCHILY.xattr.')) xattrs.set(Buffer.from(k.slice(13), 'utf8').toString('latin1'), v);
    else if (k.startsWith('LIBARCHIVE.xattr.')) {
      let key: string;
      try {
        key = decodeURIComponent(k.slice(17));
      } catch {
        throw new DadiError('EFORMAT', `bad PAX xattr name ${JSON.stringify(k)}`);
      }
      xattrs.set(Buffer.from(key, 'utf8').toString('latin1'), Buffer.from(Buffer.from(v).toString('latin1'), 'base64'));
    }
  }
  // GNU tar --acls writes ACLs as text only; the xattr form, when also there, is the exact one.
  for (const [record, xattr] of ACL_TEXT_RECORDS) {
    const text = paxText(p, record);
    const entries = text === undefined || xattrs.has(xattr) ? [] : parseAclText(text, record);
    if (entries.length) xattrs.set(xattr, encodePosixAcl(entries));
  }
  return xattrs;
}
