import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireOrSkip } from '../../test/require.js';
import { Ext4, mkfs, SparseMemoryFile } from '../ext4/index.js';
import { type PyCommand, pythonCommand } from './py-command.js';
import { PyImportPrefetch } from './py-imports.js';
import { compileModules, pythonTag } from './py-test-modules.js';

const MiB = 1 << 20;
const tag = pythonTag();
requireOrSkip('python import prefetch', tag ? undefined : 'python3 (3.11-3.13) is not installed');
const ROOT = 'usr/lib/python3.11';

/** An ext4 image holding `files` (path -> bytes, directories made on the way). */
async function image(files: Map<string, Uint8Array>): Promise<SparseMemoryFile> {
  const file = new SparseMemoryFile(256 * MiB);
  await mkfs(file, { size: 256 * MiB, time: 1700000000 });
  const fs = await Ext4.open(file);
  const dirs = new Map<string, number>([['', 2]]);
  const dirOf = async (path: string): Promise<number> => {
    const known = dirs.get(path);
    if (known !== undefined) return known;
    const i = path.lastIndexOf('/');
    const ino = await fs.mkdir(await dirOf(i < 0 ? '' : path.slice(0, i)), path.slice(i + 1));
    dirs.set(path, ino);
    return ino;
  };
  for (const [path, bytes] of files) {
    const i = path.lastIndexOf('/');
    const w = await fs.createFile(await dirOf(path.slice(0, i)), path.slice(i + 1));
    await w.write(bytes);
    await w.end();
  }
  await fs.close();
  return file;
}

const pyc = (m: string) =>
  `${ROOT}/${m.includes('/') ? m.replace(/\/([^/]+)$/, '/__pycache__/$1') : `__pycache__/${m}`}.${tag}.pyc`;

describe.skipIf(!tag)('python import prefetch over ext4', async () => {
  const sources: Record<string, string> = {
    'app.py': 'import pkg.sub\nimport os\nimport missing\ndef main():\n    import unused\n',
    'pkg/__init__.py': 'from . import helper\nfrom .data import VALUE\n',
    'pkg/helper.py': 'import deep\n',
    'pkg/data.py': 'VALUE = 1\n',
    'pkg/sub.py': 'from pkg import helper\n',
    'deep.py': 'import deeper\n',
    'deeper.py': 'x = 1\n',
    'unused.py': 'x = 2\n',
    'os.py': 'x = 3\n',
    'notes.txt': 'not python\n',
    // What a start imports that no .pyc names: the UTF-8 codec, site's hooks, a .pth file's imports.
    'encodings/__init__.py': 'from . import aliases\n',
    'encodings/aliases.py': 'aliases = {}\n',
    'encodings/utf_8.py': 'x = 4\n',
    'encodings/latin_1.py': 'x = 5\n',
    'sitecustomize.py': 'x = 6\n',
    'site-packages/hooks.pth': 'import hook; __import__("other")\n/some/path\n',
    'site-packages/hook.py': 'x = 7\n',
    'site-packages/other.py': 'x = 8\n',
    'site-packages/never.py': 'x = 9\n',
  };
  const STARTUP = [
    'encodings/__init__',
    'encodings/aliases',
    'encodings/utf_8',
    'sitecustomize',
    'site-packages/hook',
    'site-packages/other',
  ].map((m) => pyc(m));
  // What the kernel reading app.pyc leads to: pkg.sub (pkg/__init__ and pkg/sub), pkg/__init__'s
  // relative imports, helper's deep and deep's deeper. Not os (frozen in 3.11+), nor unused
  // (imported in a function), nor missing (absent).
  const APP_IMPORTS = [
    ...STARTUP,
    pyc('deep'),
    pyc('deeper'),
    pyc('pkg/__init__'),
    pyc('pkg/data'),
    pyc('pkg/helper'),
    pyc('pkg/sub'),
  ].sort();
  const compiled = tag ? await compileModules(sources) : new Map<string, Buffer>();
  const files = new Map<string, Uint8Array>();
  for (const [p, text] of Object.entries(sources)) files.set(`${ROOT}/${p}`, Buffer.from(text));
  for (const [p, bytes] of compiled) files.set(`${ROOT}/${p}`, bytes);
  // A script outside the python roots, run by path.
  files.set('app/main.py', Buffer.from('import deep\nfrom pkg import data\n'));

  /** The image, its filesystem, and a prefetch over it that records the paths it fetches. */
  async function prefetchOnImage(opts: { maxFiles?: number; maxDepth?: number } = {}) {
    const file = await image(files);
    const fs = await Ext4.open(file);
    const byOffset = new Map<number, string>();
    for (const p of files.keys()) {
      const ino = (await fs.lookup(`/${p}`))!;
      for (const e of await fs.extents(ino)) byOffset.set(e.pblk * 4096, p);
    }
    const fetched: string[] = [];
    const py = new PyImportPrefetch(file, {
      ...opts,
      warm: async (offset) => {
        fetched.push(byOffset.get(offset) ?? `?${offset}`);
      },
    });
    return { fs, byOffset, fetched, py };
  }

  /** Run the prefetch as a mount whose command is `cmd` would, before python reads a file; returns the paths fetched. */
  async function start(cmd: PyCommand) {
    const { fs, fetched, py } = await prefetchOnImage();
    await py.startPython(cmd);
    return { fetched: fetched.sort(), py, fs };
  }

  /** Run the prefetch as the kernel reading `start` would; returns the paths fetched. */
  async function run(start: string, opts: { maxFiles?: number; maxDepth?: number; prepare?: boolean } = {}) {
    const { fs, byOffset, fetched, py } = await prefetchOnImage(opts);
    if (opts.prepare) {
      await py.prepare();
      expect(py.stats.pycs).toBe(compiled.size);
    }
    const ino = (await fs.lookup(`/${start}`))!;
    await py.fileStart(ino, (await fs.extents(ino))[0]!.pblk * 4096);
    return { fetched: fetched.sort(), py, fs, byOffset };
  }

  it("fetches the modules a .pyc's imports load, and theirs, by the path python would find them at", async () => {
    const { fetched, py } = await run(pyc('app'));
    expect(fetched).toEqual(APP_IMPORTS);
    expect(py.stats).toMatchObject({ scanned: 1, files: 12 });
  });

  it('does the same with the directories listed before the first .pyc read', async () => {
    const { fetched } = await run(pyc('app'), { prepare: true });
    expect(fetched).toEqual(APP_IMPORTS);
    expect((await run(`${ROOT}/app.py`, { prepare: true })).fetched).toEqual([]);
  });

  it('keeps to its bounds on files and depth, and ignores files that are not .pyc', async () => {
    expect((await run(pyc('app'), { maxFiles: 2 })).fetched).toHaveLength(2);
    // Depth 1: only what app.pyc itself imports.
    expect((await run(pyc('app'), { maxDepth: 1 })).fetched).toEqual(
      [...STARTUP, pyc('pkg/__init__'), pyc('pkg/sub')].sort(),
    );
    expect((await run(`${ROOT}/notes.txt`)).fetched).toEqual([]);
    expect((await run(`${ROOT}/app.py`)).fetched).toEqual([]);
  });

  it("a python command's start fetches the start-up modules and what its code names, before any .pyc is read", async () => {
    const code = pythonCommand('/usr/bin/python3', ['-c', 'import pkg.sub; print("x")'])!;
    const { fetched, py, fs } = await start(code);
    expect(fetched).toEqual(APP_IMPORTS);
    // The kernel's reads of those files then fetch nothing more.
    for (const m of ['encodings/__init__', 'pkg/sub']) {
      const ino = (await fs.lookup(`/${pyc(m)}`))!;
      await py.fileStart(ino, (await fs.extents(ino))[0]!.pblk * 4096);
    }
    expect(py.stats.files).toBe(APP_IMPORTS.length);
    // A script's top-level imports: deep (and deeper), pkg's __init__ (and what it imports) and pkg.data.
    const script = await start(pythonCommand('/usr/bin/python3', ['/app/main.py'])!);
    expect(script.fetched).toEqual(
      [...STARTUP, pyc('deep'), pyc('deeper'), pyc('pkg/__init__'), pyc('pkg/data'), pyc('pkg/helper')].sort(),
    );
    // The version the program names has no standard library here: nothing is fetched.
    expect((await start({ ...code, version: '3.9' })).fetched).toEqual([]);
    expect((await start({ ...code, version: tag!.replace('cpython-3', '3.') })).fetched).toEqual(APP_IMPORTS);
  });

  it('a file the kernel reads after it was fetched is scanned then, once', async () => {
    const { py, fs } = await run(pyc('app'), { maxDepth: 1 });
    // pkg/sub was fetched at the depth bound, not scanned; now the kernel reads it.
    const ino = (await fs.lookup(`/${pyc('pkg/sub')}`))!;
    const at = (await fs.extents(ino))[0]!.pblk * 4096;
    await py.fileStart(ino, at);
    await py.fileStart(ino, at);
    expect(py.stats.scanned).toBe(2);
  });
});

/** A real extension module of the python3 on PATH that needs a library beside libc: _bz2 (libbz2). */
function hostExtension(): { name: string; bytes: Buffer; lib: Buffer; libc: Buffer } | undefined {
  const lib = '/lib/x86_64-linux-gnu/libbz2.so.1.0';
  const libc = '/lib/x86_64-linux-gnu/libc.so.6';
  if (!tag || !existsSync(lib) || !existsSync(libc)) return undefined;
  try {
    const path = execFileSync('python3', ['-c', 'import _bz2; print(_bz2.__file__)'], { encoding: 'utf8' }).trim();
    if (!path.endsWith('.so')) return undefined;
    return { name: basename(path), bytes: readFileSync(path), lib: readFileSync(lib), libc: readFileSync(libc) };
  } catch {
    return undefined;
  }
}

const ext = hostExtension();
requireOrSkip('python extension module prefetch', ext ? undefined : 'python3 with _bz2 and libbz2 is not installed');

describe.skipIf(!ext)('python import prefetch of extension modules', async () => {
  const sources: Record<string, string> = {
    'compress.py': 'import _bz2\nimport _absent\n',
    'bz2mod.py': 'from _bz2 import BZ2Compressor\n',
    'pkg/__init__.py': 'from . import _speedups\n',
    'lonely.py': 'import pkg\n',
  };
  const compiled = await compileModules(sources);
  const LIB = 'usr/lib/x86_64-linux-gnu/libbz2.so.1.0';
  const LIBC = 'usr/lib/x86_64-linux-gnu/libc.so.6';
  const SO = `${ROOT}/lib-dynload/${ext!.name}`;
  // A package's own extension module (tag-less suffix), and one for another interpreter, never loaded.
  const PKG_SO = `${ROOT}/pkg/_speedups.so`;
  const OTHER = `${ROOT}/lib-dynload/_absent.cpython-39-x86_64-linux-gnu.so`;
  const files = new Map<string, Uint8Array>();
  for (const [p, bytes] of compiled) files.set(`${ROOT}/${p}`, bytes);
  files.set(SO, ext!.bytes);
  files.set(PKG_SO, ext!.bytes.subarray(0, 100));
  files.set(OTHER, ext!.bytes);
  files.set(LIB, ext!.lib);
  files.set(LIBC, ext!.libc);

  async function run(start: string, opts: { maxElfBytes?: number; fetchedLibc?: boolean } = {}) {
    const file = await image(files);
    const fs = await Ext4.open(file);
    const byOffset = new Map<number, string>();
    for (const p of files.keys()) {
      const ino = (await fs.lookup(`/${p}`))!;
      for (const e of await fs.extents(ino)) byOffset.set(e.pblk * 4096, p);
    }
    const libcAt = (await fs.extents((await fs.lookup(`/${LIBC}`))!))[0]!.pblk * 4096;
    const fetched = new Set<string>();
    const py = new PyImportPrefetch(file, {
      maxElfBytes: opts.maxElfBytes,
      warm: async (offset) => {
        fetched.add(byOffset.get(offset) ?? `?${offset}`);
      },
      fetched: (offset) => !!opts.fetchedLibc && offset === libcAt,
    });
    const ino = (await fs.lookup(`/${start}`))!;
    await py.fileStart(ino, (await fs.extents(ino))[0]!.pblk * 4096);
    return { fetched: [...fetched].sort(), py };
  }

  it("fetches an imported extension module from the stdlib's lib-dynload, with the libraries it needs", async () => {
    const { fetched, py } = await run(pyc('compress'));
    expect(fetched).toEqual([LIBC, SO, LIB].sort());
    expect(py.stats.elfFiles).toBe(3);
    expect(py.stats.elfBytes).toBe(ext!.bytes.length + ext!.lib.length + ext!.libc.length);
    // `from _bz2 import name` loads the same module.
    expect((await run(pyc('bz2mod'))).fetched).toEqual([LIBC, SO, LIB].sort());
  });

  it('skips a library already fetched, and keeps to its byte bound', async () => {
    expect((await run(pyc('compress'), { fetchedLibc: true })).fetched).toEqual([SO, LIB].sort());
    // Room for the module, not for libbz2 (each counted in full before it is fetched).
    const { fetched, py } = await run(pyc('compress'), { maxElfBytes: ext!.bytes.length + 10, fetchedLibc: true });
    expect(fetched).toEqual([SO]);
    expect(py.stats.elfBytes).toBe(ext!.bytes.length);
  });

  it("finds a package's own extension module by its plain .so suffix (not an ELF: fetched, nothing more)", async () => {
    const { fetched } = await run(pyc('lonely'));
    expect(fetched).toEqual([pyc('pkg/__init__'), PKG_SO].sort());
  });
});
