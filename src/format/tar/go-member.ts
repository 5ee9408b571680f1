// A tar holding one regular file, byte for byte as Go's archive/tar writes it for a header of
// only name, mode, size and typeflag (what the reference's record-trace and content loader write):
// one POSIX ustar header (numbers as zero-padded octal + NUL, mtime 0, empty uname/gname, checksum
// as six octal digits + NUL + space), the data padded to 512, then two zero blocks.
// Not the overlaybd commit wrapper (writer.ts writes that one, with its PAX header).

import { DadiError } from '../../errors.js';
import { encodeTarHeader, TAR_BLOCK, TAR_FIELDS, TarTypeflag, tarChecksums } from './header.js';

/** Go's formatOctal: digits zero-padded to the field size minus one, then NUL. */
function goOctal(n: number, size: number): string {
  return n.toString(8).padStart(size - 1, '0');
}

/** The whole tar of one file `name` holding `data`. */
export function goSingleFileTar(name: string, data: Uint8Array, opts: { mode?: number } = {}): Uint8Array {
  if (Buffer.byteLength(name) >= TAR_FIELDS.name.size)
    throw new DadiError('EINVAL', `tar: member name too long: ${name}`);
  const header = encodeTarHeader(
    {
      name,
      mode: goOctal(opts.mode ?? 0o444, 8),
      uid: goOctal(0, 8),
      gid: goOctal(0, 8),
      size: goOctal(data.length, 12),
      mtime: goOctal(0, 12),
      typeflag: TarTypeflag.REGULAR,
      magic: 'ustar',
      version: '00',
      devmajor: goOctal(0, 8),
      devminor: goOctal(0, 8),
    },
    { checksum: false },
  );
  const sum = tarChecksums(header).unsigned;
  header.set(new TextEncoder().encode(`${goOctal(sum, 7)}\0 `), TAR_FIELDS.chksum.offset);
  const padded = Math.ceil(data.length / TAR_BLOCK) * TAR_BLOCK;
  const out = new Uint8Array(TAR_BLOCK + padded + 2 * TAR_BLOCK);
  out.set(header, 0);
  out.set(data, TAR_BLOCK);
  return out;
}
