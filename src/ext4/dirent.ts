// Directory blocks: linear ext4_dir_entry_2 records. Decoding also reads htree (dir_index)
// directories, whose index blocks look like empty dirent blocks to a linear scan; this module
// encodes linear blocks (one-block directories, and the fallback) — the index is htree.ts.

import { DadiError } from '../errors.js';
import { BLOCK_SIZE } from './layout.js';

/** One directory entry; `name` is the raw name bytes as a latin1 string (byte-exact). */
export interface DirEntry {
  name: string;
  ino: number;
  /** dirent file_type (1 reg, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 symlink). */
  type: number;
}

// Record: inode u32, rec_len u16, name_len u8, file_type u8, name[name_len], padded to 4.
const HEADER = 8;

export function recLen(nameLen: number): number {
  return (HEADER + nameLen + 3) & ~3;
}

/** Write one record at `off` of block `b`. */
export function encodeDirRecord(
  b: Uint8Array,
  off: number,
  ino: number,
  rl: number,
  name: Uint8Array,
  type: number,
): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(off, ino, true);
  dv.setUint16(off + 4, rl, true);
  b[off + 6] = name.length;
  b[off + 7] = type;
  b.set(name, off + HEADER);
}

/** Decode the live entries of one directory block. */
export function decodeDirBlock(b: Uint8Array, name: string, out: DirEntry[] = []): DirEntry[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  while (o < b.length) {
    if (o + HEADER > b.length) throw new DadiError('ECORRUPT', `${name}: directory entry past block end`);
    const ino = dv.getUint32(o, true);
    const rl = dv.getUint16(o + 4, true);
    const nl = b[o + 6]!;
    if (rl < HEADER || rl % 4 !== 0 || o + rl > b.length || (ino !== 0 && HEADER + nl > rl))
      throw new DadiError('ECORRUPT', `${name}: bad directory record length at ${o}`);
    if (ino !== 0 && nl > 0) {
      out.push({ ino, type: b[o + 7]!, name: Buffer.from(b.buffer, b.byteOffset + o + HEADER, nl).toString('latin1') });
    }
    o += rl;
  }
  return out;
}

/**
 * Pack entries (in order, "." and ".." first) into directory blocks. Returns ≥ 1 blocks.
 * The last record of each block extends to the block's end.
 */
export function encodeDirBlocks(entries: Iterable<DirEntry>): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  let cur = new Uint8Array(BLOCK_SIZE);
  let dv = new DataView(cur.buffer);
  let o = 0;
  let lastOff = -1;
  const close = () => {
    if (lastOff >= 0) dv.setUint16(lastOff + 4, BLOCK_SIZE - lastOff, true);
    else dv.setUint16(4, BLOCK_SIZE, true); // empty block: one unused record
    blocks.push(cur);
  };
  for (const e of entries) {
    const nameBytes = Buffer.from(e.name, 'latin1');
    const rl = recLen(nameBytes.length);
    if (o + rl > BLOCK_SIZE) {
      close();
      cur = new Uint8Array(BLOCK_SIZE);
      dv = new DataView(cur.buffer);
      o = 0;
      lastOff = -1;
    }
    encodeDirRecord(cur, o, e.ino, rl, nameBytes, e.type);
    lastOff = o;
    o += rl;
  }
  close();
  return blocks;
}
