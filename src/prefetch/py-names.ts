// What a Python bytecode file (.pyc) imports when it runs: its 16-byte header (a magic number
// ending in \r\n, flags, then mtime/size or a source hash), then the module's code object in
// marshal format. The module-level code (not the functions', whose imports run later if ever) is
// walked for IMPORT_NAME (`import a.b`, `from .x import y`: co_names[arg], with its level from the
// LOAD_CONST before it) and IMPORT_FROM (`from a import b`: b may be a submodule a.b). CPython 3.11
// to 3.13 (their code object layout and opcodes); other versions give no names. Bounded: every
// length is checked against the bytes in hand, nesting and object counts are capped, and malformed
// input ends the walk with what was found (never an exception).

/** A .pyc header: magic (2 bytes, then \r\n), flags (0, 1 or 3), then 8 bytes. */
export const PYC_HEADER_BYTES = 16;
const REF_FLAG = 0x80;
const MAX_NESTING = 100;
const MAX_OBJECTS = 1 << 20;

/** Opcodes by magic-number range (Lib/importlib/_bootstrap_external.py lists the magics). */
interface Opcodes {
  importName: number;
  importFrom: number;
  extendedArg: number;
  loadConst: number;
}
function opcodesFor(magic: number): Opcodes | undefined {
  if (magic >= 3495 && magic < 3550) return { importName: 108, importFrom: 109, extendedArg: 144, loadConst: 100 }; // 3.11, 3.12
  if (magic >= 3550 && magic < 3600) return { importName: 75, importFrom: 74, extendedArg: 71, loadConst: 83 }; // 3.13
  return undefined;
}

/** Whether `head` (a file's first bytes) is a CPython bytecode header. */
export function isPycHeader(head: Uint8Array): boolean {
  if (head.length < PYC_HEADER_BYTES || head[2] !== 0x0d || head[3] !== 0x0a) return false;
  // Flags (PEP 552): bit 0 hash-based, bit 1 check_source; nothing else is defined.
  if (head[5] !== 0 || head[6] !== 0 || head[7] !== 0 || head[4]! > 3) return false;
  // The code object follows: 'c' (0x63), with or without the ref flag.
  return head.length === PYC_HEADER_BYTES || (head[PYC_HEADER_BYTES]! & ~REF_FLAG) === 0x63;
}

/** An import the module's code makes when it runs. */
export interface PyImport {
  /** The module named (`a.b`; '' for `from . import x`). */
  name: string;
  /** 0 absolute, 1 `from .`, 2 `from ..`, ... */
  level: number;
  /** The names of a `from name import ...` (each may be a submodule). */
  from: string[];
}

interface Code {
  code: Uint8Array;
  consts: unknown[];
  names: unknown[];
}

class Malformed extends Error {}

/** The imports the module-level code of the .pyc `bytes` makes, in order; [] when it cannot tell. */
export function pycImports(bytes: Uint8Array): PyImport[] {
  if (!isPycHeader(bytes)) return [];
  const ops = opcodesFor(bytes[0]! | (bytes[1]! << 8));
  if (!ops) return [];
  let top: unknown;
  try {
    top = new MarshalReader(bytes, PYC_HEADER_BYTES).object(0);
  } catch (e) {
    if (e instanceof Malformed) return [];
    throw e;
  }
  return isCode(top) ? importsOf(top, ops) : [];
}

function isCode(x: unknown): x is Code {
  return typeof x === 'object' && x !== null && 'code' in x && 'names' in x;
}

function importsOf(c: Code, ops: Opcodes): PyImport[] {
  const out: PyImport[] = [];
  const name = (i: number) => (typeof c.names[i] === 'string' ? (c.names[i] as string) : undefined);
  let ext = 0;
  // `from .x import y` loads its level, then its from-list, then imports.
  let consts: [unknown, unknown] = [undefined, undefined];
  let current: PyImport | undefined;
  for (let pc = 0; pc + 1 < c.code.length; pc += 2) {
    const op = c.code[pc]!;
    const arg = (ext << 8) | c.code[pc + 1]!;
    if (op === ops.extendedArg) {
      ext = arg;
      continue;
    }
    ext = 0;
    if (op === ops.loadConst) consts = [consts[1], c.consts[arg]];
    else if (op === ops.importName) {
      const n = name(arg);
      const level = typeof consts[0] === 'number' && consts[0] > 0 ? consts[0] : 0;
      current = n === undefined ? undefined : { name: n, level, from: [] };
      if (current) out.push(current);
    } else if (op === ops.importFrom) {
      const n = name(arg);
      if (current && n !== undefined) current.from.push(n);
    }
  }
  return out;
}

/** Reads marshal objects; strings become JS strings, small ints numbers, code objects Code; the rest placeholders. */
class MarshalReader {
  private readonly refs: unknown[] = [];
  private objects = 0;
  constructor(
    private readonly b: Uint8Array,
    private at: number,
  ) {}

  private need(n: number): void {
    if (n < 0 || this.at + n > this.b.length) throw new Malformed();
  }
  private u8(): number {
    this.need(1);
    return this.b[this.at++]!;
  }
  private i32(): number {
    this.need(4);
    const b = this.b;
    const v = b[this.at]! | (b[this.at + 1]! << 8) | (b[this.at + 2]! << 16) | (b[this.at + 3]! << 24);
    this.at += 4;
    return v;
  }
  private bytes(n: number): Uint8Array {
    this.need(n);
    const s = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return s;
  }
  private str(n: number): string {
    return Buffer.from(this.bytes(n)).toString('latin1');
  }
  private items(n: number, depth: number): unknown[] {
    // Each item takes at least a byte: a count beyond the bytes left is malformed.
    this.need(n);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(this.object(depth + 1));
    return out;
  }

  object(depth: number): unknown {
    if (depth > MAX_NESTING || ++this.objects > MAX_OBJECTS) throw new Malformed();
    const t = this.u8();
    const flag = t & REF_FLAG;
    const type = String.fromCharCode(t & ~REF_FLAG);
    // A referenced object's slot is taken before its contents are read (they may refer to it).
    const slot = flag ? this.refs.push(undefined) - 1 : -1;
    const v = this.value(type, depth);
    if (slot >= 0) this.refs[slot] = v;
    return v;
  }

  private value(type: string, depth: number): unknown {
    switch (type) {
      case '0':
      case 'N':
      case 'F':
      case 'T':
      case 'S':
      case '.':
        return null;
      case 'i':
        return this.i32();
      case 'I':
        return this.bytes(8) && null;
      case 'g':
        return this.bytes(8) && null;
      case 'y':
        return this.bytes(16) && null;
      case 'f':
        return this.bytes(this.u8()) && null;
      case 'x':
        this.bytes(this.u8());
        return this.bytes(this.u8()) && null;
      case 'l': {
        const n = this.i32();
        return this.bytes(Math.abs(n) * 2) && null;
      }
      case 's':
        return this.bytes(this.i32());
      case 't':
      case 'u':
      case 'a':
      case 'A':
        return this.str(this.i32());
      case 'z':
      case 'Z':
        return this.str(this.u8());
      case '(':
      case '[':
      case '<':
      case '>':
        return this.items(this.i32(), depth);
      case ')':
        return this.items(this.u8(), depth);
      case '{': {
        for (;;) {
          if (this.at < this.b.length && this.b[this.at] === 0x30) {
            this.at++;
            return null;
          }
          this.object(depth + 1);
          this.object(depth + 1);
        }
      }
      case 'r': {
        const i = this.i32();
        if (i < 0 || i >= this.refs.length) throw new Malformed();
        return this.refs[i];
      }
      case 'c': {
        // 3.11-3.13: argcount, posonlyargcount, kwonlyargcount, stacksize, flags; then the objects.
        this.bytes(20);
        const code = this.object(depth + 1);
        const consts = this.object(depth + 1);
        const names = this.object(depth + 1);
        for (let i = 0; i < 5; i++) this.object(depth + 1); // localsplusnames, kinds, filename, name, qualname
        this.i32(); // firstlineno
        this.object(depth + 1); // linetable
        this.object(depth + 1); // exceptiontable
        if (!(code instanceof Uint8Array) || !Array.isArray(consts) || !Array.isArray(names)) throw new Malformed();
        return { code, consts, names } satisfies Code;
      }
      default:
        throw new Malformed();
    }
  }
}
