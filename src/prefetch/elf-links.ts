// What a dynamically linked ELF program loads before it runs: its interpreter (PT_INTERP, the
// dynamic loader) and the libraries it needs (DT_NEEDED). 64-bit little-endian ELF only (x86-64,
// aarch64); anything else, or a malformed header, gives undefined. Bounded: the headers come from
// the file's first bytes, the dynamic section and its names are read through `readAt` with sizes
// capped, so a hostile file costs at most a few small reads.

export interface ElfLinks {
  interpreter?: string;
  /** DT_NEEDED names, in order (e.g. `libc.so.6`). */
  needed: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
/** Bounds on what is read: program headers, the dynamic section, the string table, the names. */
const MAX_PHNUM = 64;
const MAX_DYNAMIC_BYTES = 16 * 1024;
const MAX_STRTAB_BYTES = 64 * 1024;
const MAX_NEEDED = 32;
const MAX_PATH = 4096;

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** The interpreter and needed libraries of the ELF whose first bytes are `head`. */
export async function elfLinks(
  head: Uint8Array,
  readAt: (offset: number, length: number) => Promise<Uint8Array>,
): Promise<ElfLinks | undefined> {
  if (head.length < 64 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46)
    return undefined;
  if (head[4] !== 2 || head[5] !== 1) return undefined; // ELFCLASS64, little-endian
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = Number(v.getBigUint64(0x20, true));
  const phentsize = v.getUint16(0x36, true);
  const phnum = v.getUint16(0x38, true);
  if (phentsize < 56 || phnum === 0 || phnum > MAX_PHNUM || phoff + phnum * phentsize > head.length) return undefined;
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    segments.push({
      type: v.getUint32(p, true),
      offset: Number(v.getBigUint64(p + 8, true)),
      vaddr: Number(v.getBigUint64(p + 16, true)),
      filesz: Number(v.getBigUint64(p + 32, true)),
    });
  }
  const links: ElfLinks = { needed: [] };
  const interp = segments.find((s) => s.type === PT_INTERP);
  if (interp && interp.filesz > 1 && interp.filesz <= MAX_PATH) {
    links.interpreter = cString(await readAt(interp.offset, interp.filesz), 0);
  }
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dynamic || dynamic.filesz === 0) return links;
  const dyn = await readAt(dynamic.offset, Math.min(dynamic.filesz, MAX_DYNAMIC_BYTES));
  const d = new DataView(dyn.buffer, dyn.byteOffset, dyn.byteLength);
  const neededAt: number[] = [];
  let strtab: number | undefined;
  let strsz = MAX_STRTAB_BYTES;
  for (let o = 0; o + 16 <= dyn.length; o += 16) {
    const tag = d.getBigInt64(o, true);
    const val = Number(d.getBigUint64(o + 8, true));
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED && neededAt.length < MAX_NEEDED) neededAt.push(val);
    else if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_STRSZ) strsz = Math.min(val, MAX_STRTAB_BYTES);
  }
  if (strtab === undefined || neededAt.length === 0) return links;
  // DT_STRTAB is an address: the file offset is that of the loaded segment holding it.
  const load = segments.find((s) => s.type === PT_LOAD && strtab >= s.vaddr && strtab < s.vaddr + s.filesz);
  if (!load) return links;
  const strings = await readAt(load.offset + (strtab - load.vaddr), strsz);
  for (const at of neededAt) {
    const name = at < strings.length ? cString(strings, at) : '';
    if (name) links.needed.push(name);
  }
  return links;
}

/** The NUL-terminated string at `at` (to the end of `bytes` without a NUL). */
function cString(bytes: Uint8Array, at: number): string {
  const end = bytes.indexOf(0, at);
  return Buffer.from(bytes.subarray(at, end < 0 ? bytes.length : end)).toString('latin1');
}
