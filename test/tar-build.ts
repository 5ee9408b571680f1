// Build layer-tar bytes by hand for tests and fuzzers: one entry's header blocks (with optional
// PAX records and GNU long name/link headers), its data and padding. Headers go through the
// codec's encoder, whose bytes are checked against the reference elsewhere.

import { encodeTarHeader, formatPaxRecord, octal, TAR_BLOCK, type TarField } from '../src/format/tar/header.js';

export interface BuildEntry {
  name: string;
  /** Typeflag character ('0' file, '5' dir, '2' symlink, '1' hard link, '3'/'4' devices, '6' fifo). */
  type: string;
  /** The ustar size field (default: the data length); PAX `size` may say otherwise. */
  size?: number;
  data?: Uint8Array;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** 'ustar' (default) or 'gnu' magic. */
  magic?: 'ustar' | 'gnu';
  prefix?: string;
  /** PAX records written in an 'x' header before the entry. */
  pax?: Record<string, string | Uint8Array>;
  gnuLongName?: string;
  gnuLongLink?: string;
}

const enc = new TextEncoder();

function pad(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(b.length / TAR_BLOCK) * TAR_BLOCK);
  out.set(b);
  return out;
}

function header(fields: Partial<Record<TarField, string>>, magic: 'ustar' | 'gnu'): Uint8Array {
  const m = magic === 'gnu' ? { magic: 'ustar ', version: ' \0' } : { magic: 'ustar', version: '00' };
  return encodeTarHeader({ ...m, ...fields }, { checksum: true });
}

/** A PAX record with a binary value (the length counts bytes). */
function paxRecord(key: string, value: string | Uint8Array): Uint8Array {
  if (typeof value === 'string') return enc.encode(formatPaxRecord(key, value));
  const placeholder = formatPaxRecord(key, 'x'.repeat(value.length));
  const len = enc.encode(placeholder).length;
  return Buffer.concat([enc.encode(`${len} ${key}=`), value, enc.encode('\n')]);
}

/** The header blocks of an entry (extension headers first), without its data. */
export function entryHeaders(e: BuildEntry): Uint8Array {
  const magic = e.magic ?? 'ustar';
  const parts: Uint8Array[] = [];
  const ext = (type: string, name: string, data: Uint8Array) => {
    parts.push(header({ name, typeflag: type, size: octal(data.length, 12), mode: octal(0o644, 8) }, magic));
    parts.push(pad(data));
  };
  if (e.gnuLongLink !== undefined) ext('K', '././@LongLink', enc.encode(`${e.gnuLongLink}\0`));
  if (e.gnuLongName !== undefined) ext('L', '././@LongLink', enc.encode(`${e.gnuLongName}\0`));
  if (e.pax)
    ext(
      'x',
      `PaxHeaders/${e.name}`.slice(0, 99),
      Buffer.concat(Object.entries(e.pax).map(([k, v]) => paxRecord(k, v))),
    );
  parts.push(
    header(
      {
        name: e.name,
        typeflag: e.type,
        mode: octal(e.mode ?? 0o644, 8),
        uid: octal(e.uid ?? 0, 8),
        gid: octal(e.gid ?? 0, 8),
        size: octal(e.size ?? e.data?.length ?? 0, 12),
        mtime: octal(e.mtime ?? 0, 12),
        linkname: e.linkname ?? '',
        devmajor: octal(e.devmajor ?? 0, 8),
        devminor: octal(e.devminor ?? 0, 8),
        prefix: e.prefix ?? '',
      },
      magic,
    ),
  );
  return Buffer.concat(parts);
}

/** An entry's headers, data and padding. */
export function entryBytes(e: BuildEntry): Uint8Array {
  return Buffer.concat([entryHeaders(e), pad(e.data ?? new Uint8Array(0))]);
}

/** A whole archive: the entries and the two zero blocks that end it. */
export function tarOf(entries: BuildEntry[]): Uint8Array {
  return Buffer.concat([...entries.map(entryBytes), new Uint8Array(2 * TAR_BLOCK)]);
}
