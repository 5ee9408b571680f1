// The read side of the tar wrapper (spec §4): recognise a layer blob wrapped in a one-member tar
// and give a view of the member's bytes. Not a tar lister or extractor: only the first member counts.
//
// Accepted like the reference: a first header with magic "ustar"+"00" and a good checksum (unsigned
// or signed sum). Also accepted, unlike the reference: GNU tar ("ustar  \0"), which is what the
// base layer ext4_64.tar.gz holds. The payload offset is found by walking the PAX / GNU long-name
// headers, which gives the reference's hard-coded 512 / 1536 for every file the reference writes.

import type { BlockFile } from '../../blockfile/blockfile.js';
import { readExact, SliceFile } from '../../blockfile/range.js';
import { DadiError } from '../../errors.js';
import {
  decodeTarHeader,
  isTarExtension,
  paxNumber,
  TAR_BLOCK,
  TAR_MAX_EXTENSION_SIZE,
  TarExtensions,
  tarText,
} from './header.js';

export interface TarPayload {
  /** Where the member's data starts in the tar file. */
  payloadOffset: number;
  payloadSize: number;
  memberName: string;
}

/** Extension headers (PAX, GNU long names) allowed before the member. */
const MAX_EXTENSIONS = 16;

/**
 * The payload of a tar-wrapped blob, or undefined if `file` does not start with a tar header.
 * Throws EFORMAT (naming the file) if it does but the header chain or sizes are broken.
 */
export async function detectTar(file: BlockFile): Promise<TarPayload | undefined> {
  if (file.size < TAR_BLOCK) return undefined;
  let h = decodeTarHeader(await readExact(file, 0, TAR_BLOCK, 'tar header'));
  if (h.format === 'other' || !h.checksumOk) return undefined;

  const bad = (what: string) => new DadiError('EFORMAT', `${file.name}: tar: ${what}`);
  let pos = 0;
  const ext = new TarExtensions();
  let extensions = 0;
  let zeros = 0;
  for (;;) {
    if (pos > 0) {
      if (pos + TAR_BLOCK > file.size) throw bad(`header at ${pos} is past the end of the file`);
      h = decodeTarHeader(await readExact(file, pos, TAR_BLOCK, 'tar header'));
      if (h.zero) {
        // The reference skips one zero block and stops at the second (end of archive).
        if (++zeros >= 2) throw bad('no member before the end-of-archive marker');
        pos += TAR_BLOCK;
        continue;
      }
      if (!h.checksumOk) throw bad(`header at ${pos} has a bad checksum`);
    }
    if (!isTarExtension(h.typeflag)) break;

    if (++extensions > MAX_EXTENSIONS) throw bad(`more than ${MAX_EXTENSIONS} extension headers`);
    const size = h.size;
    if (size === undefined || size > TAR_MAX_EXTENSION_SIZE) throw bad(`extension header at ${pos} has a bad size`);
    const dataAt = pos + TAR_BLOCK;
    if (dataAt + size > file.size) throw bad(`extension header at ${pos} runs past the end of the file`);
    try {
      ext.add(h.typeflag, await readExact(file, dataAt, size, 'tar extension header'));
    } catch (e) {
      if (e instanceof DadiError) throw bad(`extension header at ${pos}: ${e.message}`);
      throw e;
    }
    pos = dataAt + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
  }

  const member = ext.take(h);
  const memberName = tarText(member.path);
  // As the reference: the PAX size wins when present and > 0, else the header's size field.
  let size = h.size;
  let paxSize: number | undefined;
  try {
    paxSize = paxNumber(member.records, 'size');
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (paxSize) size = paxSize;
  if (size === undefined) throw bad(`member ${memberName} has a bad size field`);
  const payloadOffset = pos + TAR_BLOCK;
  if (payloadOffset + size > file.size) {
    throw bad(
      `member ${memberName} (${size} bytes at ${payloadOffset}) runs past the end of the file (${file.size} bytes)`,
    );
  }
  return { payloadOffset, payloadSize: size, memberName };
}

/**
 * A read-only view of the member of a tar-wrapped blob. EFORMAT if `file` is not a tar.
 * Closing the view closes `file`.
 */
export async function openTarPayload(file: BlockFile): Promise<BlockFile> {
  const t = await detectTar(file);
  if (!t) throw new DadiError('EFORMAT', `${file.name}: not a tar file`);
  return tarPayloadFile(file, t);
}

/** The view of the member `detectTar` found in `file` (no second walk of its headers). Closing it closes `file`. */
export function tarPayloadFile(file: BlockFile, t: TarPayload): BlockFile {
  return new SliceFile(file, t.payloadOffset, t.payloadSize, `${t.memberName} in ${file.name}`);
}
