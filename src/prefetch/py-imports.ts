// Import-aware prefetch for Python bytecode. Python's start is a chain of dependent reads: each
// import opens one .pyc, runs it, and only then opens the next, one round trip a link. When the
// kernel reads the start of a .pyc, the modules its module-level code imports (py-names.ts) are
// found beside it — `<dir>/__pycache__/<name>.<tag>.pyc` or the package `<dir>/<name>/__pycache__/
// __init__.<tag>.pyc`, dir the sys.path root the file lives under for an absolute import, its own
// package (or a parent) for a relative one; each part of a dotted name, and the names of a `from`
// that are submodules — fetched into the cache at once, and scanned the same way as their bytes
// arrive, so the chain's links are fetched in a few parallel waves. An import that does not run (a
// branch not taken, a module that is frozen into the interpreter) costs a fetch: files, bytes per
// file and bytes in all are bounded, and the interpreter's frozen modules are skipped.
// An import that names an extension module (`_ssl`: `lib-dynload/_ssl.cpython-311-…so` for the
// stdlib, or a `.so` beside the package) fetches the .so whole and, from its ELF headers, the
// libraries it needs (libssl, libcrypto: DT_NEEDED in the loader's default directories, a few
// levels), which the loader would otherwise map one after another, each a round trip; libraries
// already fetched as launch files are skipped, and these files have their own byte bound.
// Paths come from our own ext4 reader over the device: the python directories (`/usr/lib/python3*`,
// `/usr/local/lib/python3*`) are listed once, through the cache, when the metadata prefetch has
// fetched the directory blocks (prepare()) or on the first .pyc read if that comes first; a .pyc
// is then known by its inode.

import type { BlockFile } from '../blockfile/blockfile.js';
import { Ext4, kindOf } from '../ext4/fs.js';
import { elfLinks } from './elf-links.js';
import { LIBRARY_DIRS } from './launch-files.js';
import { MAX_SOURCE_BYTES, type PyCommand, sourceImports } from './py-command.js';
import { isPycHeader, PYC_HEADER_BYTES, type PyImport, pycImports } from './py-names.js';

export interface PyImportOptions {
  /** Files fetched at most (default 240). */
  maxFiles?: number;
  /** A .pyc larger than this is neither fetched nor scanned (default 128 KiB). */
  maxFileBytes?: number;
  /** Bytes fetched in all at most (default 2.5 MiB). */
  maxBytes?: number;
  /** Import levels followed from a file the kernel read (default 8). */
  maxDepth?: number;
  /** Directories listed at most when indexing (default 4000). */
  maxDirs?: number;
  /** An extension module (.so) or a library it needs larger than this is not fetched (default 8 MiB). */
  maxElfFileBytes?: number;
  /** Extension modules and their libraries: bytes fetched in all at most (default 12 MiB). */
  maxElfBytes?: number;
  /** Fetch [offset, offset + length) of the device into the cache. */
  warm: (offset: number, length: number) => Promise<void>;
  /**
   * Whether the file starting at device byte `offset` is fetched already (a launch file: the
   * program's libraries): such a library is neither fetched nor counted again.
   */
  fetched?: (offset: number) => boolean;
  cancelled?: () => boolean;
  /** Told about the first failure (the prefetch then stops). */
  log?: (message: string) => void;
  /** The device's ext4 reader, when the caller shares one (its decoded directories with it); default: one opened here. */
  fs?: () => Promise<Ext4>;
}

export interface PyImportStats {
  /** .pyc files the kernel read that were scanned. */
  scanned: number;
  /** Files fetched, and their bytes. */
  files: number;
  bytes: number;
  /** Directories listed for the index, and the .pyc files found. */
  dirs: number;
  pycs: number;
  /** Extension modules and the libraries they need fetched, and their bytes (not in files/bytes). */
  elfFiles: number;
  elfBytes: number;
}

/** A directory on a python path: its .pyc files (by file name) and subdirectories. */
interface PyDir {
  pycs: Map<string, number>;
  /** Its extension modules (module name -> files, each with the cache tag its suffix names, if any). */
  exts: Map<string, Array<{ ino: number; tag?: string }>>;
  subdirs: Map<string, PyDir>;
  parent?: PyDir;
  /** Holds __init__.py or its .pyc. */
  isPackage: boolean;
  /** Its .pth files (inodes): a site directory's, run by `site` at start. */
  pth: number[];
}

interface PycEntry {
  dir: PyDir;
  tag: string;
}

/** A file an import loads: a .pyc (followed in turn), or an extension module (with the libraries it needs). */
interface Found {
  ino: number;
  entry: PycEntry;
  ext?: boolean;
}

const BLOCK = 4096;
/** A .pyc larger than this is not scanned (the largest of CPython 3.11's stdlib is ~600 KB). */
const MAX_SCAN_BYTES = 1 << 20;
/** Where sys.path's standard roots live: directories named python3 or python3.N in these. */
const PY_PARENTS = ['/usr/lib', '/usr/local/lib'];
const PY_ROOT = /^python3(\.\d+)?$/;
/**
 * Modules CPython 3.11+ runs frozen into the interpreter (Python/frozen.c), not from their .pyc
 * (unless run with -X frozen_modules=off): fetching them would cost bytes no one reads.
 */
const FROZEN = new Set([
  'abc',
  'codecs',
  'io',
  '_collections_abc',
  '_sitebuiltins',
  'genericpath',
  'ntpath',
  'posixpath',
  'os',
  'site',
  'stat',
  'importlib.util',
  'importlib.machinery',
  'runpy',
  'zipimport',
]);
/** Tags whose interpreters freeze FROZEN (3.11 and later). */
/**
 * What every start imports that no .pyc names: the codec of the locale (UTF-8) and its alias table,
 * found by the codec search at run time, and the customization hooks the frozen `site` imports.
 */
const STARTUP = ['encodings.aliases', 'encodings.utf_8', 'sitecustomize', 'usercustomize'];
/** A .pth line that is run: `import a, b` and, in it, `__import__('c')`. */
const PTH_IMPORT = /^import[ \t]+([\w.]+(?:\s*,\s*[\w.]+)*)/;
const PTH_DUNDER_IMPORT = /__import__\(\s*['"]([\w.]+)['"]/g;
const PTH_BYTES = 4096;
const FROZEN_TAG = /^cpython-3(1[1-9]|[2-9]\d)$/;
/**
 * An extension module's file name, by CPython's EXTENSION_SUFFIXES on Linux:
 * `name.cpython-311-x86_64-linux-gnu.so`, `name.abi3.so`, `name.so`.
 */
const EXT_NAME = /^([A-Za-z_][A-Za-z0-9_]*)\.(?:(cpython-\d+)-[A-Za-z0-9_-]+\.so|abi3\.so|so)$/;
/** Where CPython's sys.path keeps the standard library's extension modules, beside the stdlib root. */
const DYNLOAD = 'lib-dynload';
/** ELF headers (and the dynamic section, usually) are read from this many first bytes. */
const ELF_HEAD_BYTES = 4096;
/** Levels of DT_NEEDED followed from an extension module (its libraries, and theirs). */
const MAX_ELF_DEPTH = 3;

export class PyImportPrefetch {
  readonly stats: PyImportStats = { scanned: 0, files: 0, bytes: 0, dirs: 0, pycs: 0, elfFiles: 0, elfBytes: 0 };
  private fs?: Promise<Ext4>;
  private index?: Promise<Map<number, PycEntry>>;
  /** Inodes fetched or read by the kernel (each fetched once), and those scanned (each once). */
  private readonly seen = new Set<number>();
  private readonly scannedIno = new Set<number>();
  private failed = false;
  private seeded = false;
  /** Site directories (site-packages, dist-packages) found by the index. */
  private readonly siteDirs: PyDir[] = [];
  /** The python roots found by the index (`python3.11`, `python3`), by name. */
  private readonly roots: Array<{ name: string; dir: PyDir }> = [];

  constructor(
    private readonly device: BlockFile,
    private readonly opts: PyImportOptions,
  ) {}

  /**
   * The kernel is reading the start of the regular file `ino` at device byte `offset`: if it is a
   * .pyc, fetch the modules it names. Resolves when done (never rejects).
   */
  async fileStart(ino: number, offset: number): Promise<void> {
    if (this.failed || this.scannedIno.has(ino) || this.opts.cancelled?.()) return;
    try {
      if (!this.index) {
        // Until the first .pyc, each file start costs a 16-byte read (of bytes the kernel is fetching).
        const head = new Uint8Array(PYC_HEADER_BYTES + 1);
        const n = await this.device.read(head, offset);
        if (!isPycHeader(head.subarray(0, n))) return;
        this.index ??= this.buildIndex();
      }
      const entry = (await this.index).get(ino);
      if (!entry || this.scannedIno.has(ino)) return;
      this.seen.add(ino);
      this.stats.scanned++;
      const seed = this.seeded ? undefined : this.seed(entry);
      this.seeded = true;
      await Promise.all([seed, this.follow(ino, entry, 0)]);
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * The container's command is python (py-command.ts): fetch what its start imports now, before it
   * reads its first .pyc — the start-up modules (the `encodings` package, STARTUP, the .pth files'
   * imports) and the modules the command names — and follow them. From the standard library root
   * that holds `encodings` (the one of `cmd.version` when several do). Resolves when done; never rejects.
   */
  async startPython(cmd: PyCommand): Promise<void> {
    if (this.failed || this.seeded || this.opts.cancelled?.()) return;
    try {
      this.index ??= this.buildIndex();
      await this.index;
      const root = this.stdlib(cmd.version);
      if (!root || this.seeded || this.opts.cancelled?.()) return;
      this.seeded = true;
      const imports: PyImport[] = [{ name: 'encodings', level: 0, from: [] }, ...cmd.imports];
      if (cmd.script) imports.push(...(await this.scriptImports(cmd.script)));
      await Promise.all([
        this.seed(root),
        this.take(
          imports.flatMap((imp) => this.resolve(imp, root)),
          1,
        ),
      ]);
    } catch (e) {
      this.fail(e);
    }
  }

  /** The standard library root (holding the `encodings` package's .pyc) and its tag, if one is clear. */
  private stdlib(version: string | undefined): PycEntry | undefined {
    const found: PycEntry[] = [];
    for (const r of this.roots) {
      if (version && r.name !== `python${version}`) continue;
      const inits = [...(r.dir.subdirs.get('encodings')?.pycs.keys() ?? [])].filter((n) => n.startsWith('__init__.'));
      const tags = [...new Set(inits.map(pycTag).filter((t) => t !== undefined))];
      if (tags.length === 1) found.push({ dir: r.dir, tag: tags[0]! });
    }
    return found.length === 1 ? found[0] : undefined;
  }

  /** The top-level imports of the script at `path` (absolute, in the image); none when absent or not a file. */
  private async scriptImports(path: string): Promise<PyImport[]> {
    const fs = await this.ext4();
    const ino = await fs.lookup(path, { follow: true }).catch(() => undefined);
    if (ino === undefined) return [];
    const inode = await fs.inode(ino);
    if (kindOf(inode.mode) !== 'file') return [];
    const buf = new Uint8Array(Math.min(inode.size, MAX_SOURCE_BYTES));
    const n = await fs.readIno(ino, buf, 0);
    return sourceImports(Buffer.from(buf.subarray(0, n)).toString('utf8')).filter((imp) => imp.level === 0);
  }

  /** List the python directories now (else on the first .pyc read). Resolves when done; never rejects. */
  async prepare(): Promise<void> {
    this.index ??= this.buildIndex();
    try {
      await this.index;
    } catch (e) {
      this.fail(e);
    }
  }

  /** The prefetch stops for good at its first failure, which is logged (it is only a prefetch). */
  private fail(e: unknown): void {
    if (!this.failed) this.opts.log?.(`python import prefetch of ${this.device.name}: ${(e as Error).message}`);
    this.failed = true;
  }

  private stopped(): boolean {
    return (
      !!this.opts.cancelled?.() ||
      this.stats.files >= (this.opts.maxFiles ?? 240) ||
      this.stats.bytes >= this.maxBytes()
    );
  }

  private maxBytes(): number {
    return this.opts.maxBytes ?? 2560 * 1024;
  }

  private ext4(): Promise<Ext4> {
    this.fs ??= this.opts.fs?.() ?? Ext4.open(this.device);
    return this.fs;
  }

  /** Scan the .pyc `ino` (in the cache, or on its way) and fetch, then follow, the modules it names. */
  private async follow(ino: number, entry: PycEntry, depth: number): Promise<void> {
    if (this.scannedIno.has(ino) || this.stopped()) return;
    this.scannedIno.add(ino);
    const fs = await this.ext4();
    const size = (await fs.inode(ino)).size;
    // A file the kernel read may be larger than those fetched: it is in the cache, scanning costs no bytes.
    if (size > MAX_SCAN_BYTES) return;
    const bytes = new Uint8Array(size);
    const n = await fs.readIno(ino, bytes, 0);
    if (!isPycHeader(bytes.subarray(0, n))) return;
    await this.take(
      pycImports(bytes.subarray(0, n)).flatMap((imp) => this.resolve(imp, entry)),
      depth + 1,
    );
  }

  /** Fetch the modules `found` not fetched yet, then follow them (at import level `depth`). */
  private async take(found: Found[], depth: number): Promise<void> {
    const maxDepth = this.opts.maxDepth ?? 8;
    await Promise.all(
      found.map(async ({ ino, entry, ext }) => {
        if (this.seen.has(ino)) return;
        this.seen.add(ino);
        if (ext) return this.fetchElf(ino, 0);
        if (!(await this.fetch(ino))) return;
        if (depth < maxDepth) await this.follow(ino, entry, depth);
      }),
    );
  }

  /**
   * Fetch the extension module or library `ino` whole, then the libraries it needs (DT_NEEDED, in
   * the loader's default directories), as the loader will map them one after another when the
   * import runs. A library fetched already (a launch file) is skipped with what it needs.
   */
  private async fetchElf(ino: number, depth: number): Promise<void> {
    if (this.opts.cancelled?.()) return;
    const fs = await this.ext4();
    const inode = await fs.inode(ino);
    const size = inode.size;
    if (kindOf(inode.mode) !== 'file') return;
    if (size > (this.opts.maxElfFileBytes ?? 8 << 20)) return;
    const extents = (await fs.extents(ino)).filter((e) => !e.unwritten && e.lblk * BLOCK < size);
    const first = extents.find((e) => e.lblk === 0);
    if (first && this.opts.fetched?.(first.pblk * BLOCK)) return;
    // Counted before the awaits: fetches started together must not all pass the bound.
    if (this.stats.elfBytes + size > (this.opts.maxElfBytes ?? 12 << 20)) return;
    this.stats.elfFiles++;
    this.stats.elfBytes += size;
    await Promise.all(
      extents.map((e) => this.opts.warm(e.pblk * BLOCK, Math.min(e.len * BLOCK, size - e.lblk * BLOCK))),
    );
    if (depth >= MAX_ELF_DEPTH) return;
    const readAt = async (offset: number, length: number): Promise<Uint8Array> => {
      const buf = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
      const n = await fs.readIno(ino, buf, offset);
      return buf.subarray(0, n);
    };
    const links = await elfLinks(await readAt(0, ELF_HEAD_BYTES), readAt);
    if (!links) return;
    await Promise.all(
      links.needed.map(async (name) => {
        const lib = await this.findLibrary(fs, name);
        if (lib === undefined || this.seen.has(lib)) return;
        this.seen.add(lib);
        await this.fetchElf(lib, depth + 1);
      }),
    );
  }

  /** The inode of the library `name` (DT_NEEDED) in the loader's default directories, first found. */
  private async findLibrary(fs: Ext4, name: string): Promise<number | undefined> {
    if (name.includes('/')) return fs.lookup(name, { follow: true }).catch(() => undefined);
    for (const dir of LIBRARY_DIRS) {
      const ino = await fs.lookup(`${dir}/${name}`, { follow: true }).catch(() => undefined);
      if (ino !== undefined) return ino;
    }
    return undefined;
  }

  /**
   * On the first .pyc read (python is starting): fetch what a start imports that no .pyc names
   * (STARTUP, beside the sys.path root of that file) and the modules the site directories' .pth
   * files import.
   */
  private async seed(entry: PycEntry): Promise<void> {
    const root = { dir: rootOf(entry.dir), tag: entry.tag };
    const fromRoot = STARTUP.flatMap((name) => this.resolve({ name, level: 0, from: [] }, root));
    const fs = await this.ext4();
    await Promise.all([
      this.take(fromRoot, 1),
      ...this.siteDirs.flatMap((dir) =>
        dir.pth.map(async (ino) => {
          const buf = new Uint8Array(PTH_BYTES);
          const n = await fs.readIno(ino, buf, 0);
          const site = { dir, tag: entry.tag };
          const names = pthImports(Buffer.from(buf.subarray(0, n)).toString('latin1'));
          await this.take(
            names.flatMap((name) => this.resolve({ name, level: 0, from: [] }, site)),
            1,
          );
        }),
      ),
    ]);
  }

  /**
   * The files `imp` loads when made by a module of `entry`'s directory: .pyc files (packages'
   * __init__ included) and extension modules.
   */
  private resolve(imp: PyImport, entry: PycEntry): Found[] {
    const out: Found[] = [];
    const init = `__init__.${entry.tag}.pyc`;
    let dir: PyDir | undefined = entry.dir;
    if (imp.level === 0) dir = rootOf(entry.dir);
    else for (let l = 1; l < imp.level && dir; l++) dir = dir.parent;
    const frozen = imp.level === 0 && FROZEN_TAG.test(entry.tag);
    /**
     * The module `part` in `d` as CPython's path finder looks: a package (its __init__), else an
     * extension module, else a .pyc; returns the package's directory, or `true` for a module
     * found, `false` for none.
     */
    const find = (d: PyDir, part: string, dotted: string): PyDir | boolean => {
      if (frozen && FROZEN.has(dotted)) return true;
      const sub = d.subdirs.get(part);
      const pkgInit = sub?.pycs.get(init);
      if (sub && pkgInit !== undefined) {
        out.push({ ino: pkgInit, entry: { dir: sub, tag: entry.tag } });
        return sub;
      }
      const ext = d.exts.get(part)?.find((x) => x.tag === undefined || x.tag === entry.tag);
      if (ext) {
        out.push({ ino: ext.ino, entry: { dir: d, tag: entry.tag }, ext: true });
        return true;
      }
      const mod = d.pycs.get(`${part}.${entry.tag}.pyc`);
      if (mod !== undefined) out.push({ ino: mod, entry: { dir: d, tag: entry.tag } });
      return mod !== undefined;
    };
    const parts = imp.name ? imp.name.split('.') : [];
    for (let p = 0; p < parts.length && dir; p++) {
      const dotted = parts.slice(0, p + 1).join('.');
      let next = find(dir, parts[p]!, dotted);
      // A top-level module not in the stdlib root may be an extension module in its lib-dynload.
      const dynload = p === 0 && imp.level === 0 ? dir.subdirs.get(DYNLOAD) : undefined;
      if (next === false && dynload) next = find(dynload, parts[p]!, dotted);
      dir = typeof next === 'object' ? next : undefined;
    }
    // `from package import name`: the name may be a submodule.
    if (dir && imp.from.length) for (const f of imp.from) find(dir, f, imp.name ? `${imp.name}.${f}` : f);
    return out;
  }

  /** Fetch the .pyc `ino` whole into the cache; false when a bound stops it. */
  private async fetch(ino: number): Promise<boolean> {
    if (this.stopped()) return false;
    // Counted before the awaits: fetches started together must not all pass the bound.
    this.stats.files++;
    const fs = await this.ext4();
    const size = (await fs.inode(ino)).size;
    if (size > (this.opts.maxFileBytes ?? 128 * 1024) || this.stats.bytes + size > this.maxBytes()) {
      this.stats.files--;
      return false;
    }
    this.stats.bytes += size;
    const ranges = (await fs.extents(ino))
      .filter((e) => !e.unwritten && e.lblk * BLOCK < size)
      .map((e) => ({ offset: e.pblk * BLOCK, length: Math.min(e.len * BLOCK, size - e.lblk * BLOCK) }));
    await Promise.all(ranges.map((r) => this.opts.warm(r.offset, r.length)));
    return true;
  }

  /** List the python roots once: every .pyc under them, by inode, with its directory and tag. */
  private async buildIndex(): Promise<Map<number, PycEntry>> {
    const fs = await this.ext4();
    const byIno = new Map<number, PycEntry>();
    const maxDirs = this.opts.maxDirs ?? 4000;
    const list = async (ino: number, dir: PyDir): Promise<void> => {
      if (this.stats.dirs >= maxDirs || this.opts.cancelled?.()) return;
      this.stats.dirs++;
      const children: Array<Promise<void>> = [];
      for (const e of await fs.entries(ino)) {
        if (e.type === 1 && (e.name === '__init__.py' || e.name.startsWith('__init__.'))) dir.isPackage = true;
        if (e.type === 1 && e.name.endsWith('.pth')) dir.pth.push(e.ino);
        const ext = e.type === 1 ? EXT_NAME.exec(e.name) : null;
        if (ext) {
          const files = dir.exts.get(ext[1]!) ?? [];
          files.push({ ino: e.ino, tag: ext[2] });
          dir.exts.set(ext[1]!, files);
        }
        if (e.type !== 2) continue;
        if (e.name === '__pycache__') {
          children.push(
            fs.entries(e.ino).then((pycs) => {
              for (const p of pycs) {
                const tag = pycTag(p.name);
                if (p.type !== 1 || !tag) continue;
                dir.pycs.set(p.name, p.ino);
                byIno.set(p.ino, { dir, tag });
                this.stats.pycs++;
                if (p.name.startsWith('__init__.')) dir.isPackage = true;
              }
            }),
          );
          continue;
        }
        const sub: PyDir = {
          pycs: new Map(),
          exts: new Map(),
          subdirs: new Map(),
          parent: dir,
          isPackage: false,
          pth: [],
        };
        if (e.name === 'site-packages' || e.name === 'dist-packages') this.siteDirs.push(sub);
        dir.subdirs.set(e.name, sub);
        children.push(list(e.ino, sub));
      }
      await Promise.all(children);
    };
    for (const parent of PY_PARENTS) {
      const pino = await fs.lookup(parent, { follow: true }).catch(() => undefined);
      if (pino === undefined) continue;
      const roots = (await fs.entries(pino)).filter((e) => e.type === 2 && PY_ROOT.test(e.name));
      await Promise.all(
        roots.map((r) => {
          const dir: PyDir = { pycs: new Map(), exts: new Map(), subdirs: new Map(), isPackage: false, pth: [] };
          this.roots.push({ name: r.name, dir });
          return list(r.ino, dir);
        }),
      );
    }
    return byIno;
  }
}

/** The tag of a plain .pyc name (`json.cpython-311.pyc` -> `cpython-311`); undefined for others (opt-1, ...). */
export function pycTag(name: string): string | undefined {
  if (!name.endsWith('.pyc')) return undefined;
  const parts = name.slice(0, -4).split('.');
  return parts.length === 2 && parts[0] && parts[1] ? parts[1] : undefined;
}

/** The modules the run lines of a .pth file import. */
export function pthImports(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = PTH_IMPORT.exec(line);
    if (!m) continue;
    out.push(...m[1]!.split(',').map((n) => n.trim()));
    for (const d of line.matchAll(PTH_DUNDER_IMPORT)) out.push(d[1]!);
  }
  return out;
}

/** The sys.path root `dir` lives under: up while the directory is a package. */
function rootOf(dir: PyDir): PyDir {
  let d = dir;
  while (d.isPackage && d.parent) d = d.parent;
  return d;
}
