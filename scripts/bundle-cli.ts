// The build's second step (after tsc): the commands whose start counts as one file each,
// dispatched by bin/dadi: the daemon's client commands (`dadi run|mount|umount|ps|rm`) as
// dist/cli/client.bundle.cjs, `dadi pull` (containerd's lazy pull) as dist/cli/pull.bundle.cjs, and
// `dadi convert` (its wall time is the conversion's) as dist/cli/convert.bundle.js.
// The first two run through dist/cli/start.cjs (cli/cached-start.ts) with V8's code cache, which a
// warm-up run of each writes here (NAME.bundle.cache): on a `ps` start that took 114 → 101 ms of CPU.
// Node loads a module graph file by file, and these commands count every millisecond of their
// start: one file with commander inside loads in about half the time of the ~20 modules it
// replaces. Only the static graph is bundled; a dynamic import (the daemon, commit, progress bars)
// stays an import of the tsc output next to it, so each module still loads once per process.
// `import.meta.url` in a bundled module is the URL its tsc output has (where its worker threads'
// entries and daemon-main.js lie beside it), not the bundle's.
//
//   node --import tsx scripts/bundle-cli.ts [DIST]      # default: dist

import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

export interface BundleOptions {
  /** The client commands' entry (the tsc output's cli/client-entry.js, or its .ts source). */
  entry: string;
  outfile: string;
  /** Where the entry's tree lives, and where its dynamic imports are to be loaded from at run time. */
  from: { root: string; runtimeRoot: string };
  /** Packages left in node_modules (default: those the client commands need as they are). */
  external?: string[];
  /**
   * 'cjs': a CommonJS module body for dist/cli/start.cjs (cli/cached-start.ts), which runs it with
   * V8's code cache; its dynamic imports call `__dadiImport`. Default 'esm': a module node runs itself.
   */
  format?: 'esm' | 'cjs';
}

/** Packages with native code stay in node_modules, always. */
const NATIVE = ['lz4', 'zstd-napi', '@node-rs/*'];
/** The converter needs the registry client and the rest of its modules as it starts. */
const CONVERT_EXTERNAL = NATIVE;
/** The client commands load these only through the daemon's code (dynamic imports) or not at all. */
const PULL_EXTERNAL = NATIVE;
const CLIENT_EXTERNAL = [...NATIVE, '@grpc/*', 'undici', 'pino', 'prom-client', 'zod', 'yaml'];

/** Dynamic imports of our own modules stay imports, re-aimed from the bundle's place at runtimeRoot. */
function dynamicImportsOutside(o: BundleOptions): Plugin {
  return {
    name: 'dynamic-imports-outside',
    setup(b) {
      const root = realpathSync(o.from.root); // esbuild's resolveDir is a real path
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.kind !== 'dynamic-import') return undefined;
        const target = join(o.from.runtimeRoot, relative(root, resolve(args.resolveDir, args.path)));
        return { path: fromBundle(o, target), external: true };
      });
    },
  };
}

/** The bundle-relative path of `target`, as an import specifier. */
function fromBundle(o: BundleOptions, target: string): string {
  const path = relative(dirname(o.outfile), target).split(sep).join('/');
  return path.startsWith('.') ? path : `./${path}`;
}

/** `import.meta.url` of a module of our tree is its URL at runtimeRoot, as if it were not bundled. */
function moduleUrlsOutside(o: BundleOptions): Plugin {
  return {
    name: 'module-urls-outside',
    setup(b) {
      // esbuild loads modules by their real paths, so the tree's root is taken as one too (a
      // checkout whose node_modules is a symlink builds the benchmarks' CLI under it).
      const root = realpathSync(o.from.root);
      b.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
        const rel = relative(root, args.path);
        if (rel.startsWith('..') || rel.includes(`node_modules${sep}`)) return undefined;
        const text = await readFile(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const base = o.format === 'cjs' ? 'require("node:url").pathToFileURL(__filename)' : 'import.meta.url';
        const url = `new URL(${JSON.stringify(fromBundle(o, join(o.from.runtimeRoot, rel)))}, ${base}).href`;
        return { contents: text.replaceAll('import.meta.url', url), loader: args.path.endsWith('ts') ? 'ts' : 'js' };
      });
    },
  };
}

export async function bundleClientCommands(o: BundleOptions): Promise<void> {
  const cjs = o.format === 'cjs';
  const r = await build({
    entryPoints: [o.entry],
    outfile: o.outfile,
    bundle: true,
    platform: 'node',
    format: cjs ? 'cjs' : 'esm',
    target: 'node20',
    // commander (pure JS, CommonJS) comes inside, and CommonJS inside an ES module needs a `require`.
    external: o.external ?? CLIENT_EXTERNAL,
    ...(cjs
      ? {}
      : {
          banner: {
            js: "import { createRequire as __dadiRequire } from 'node:module'; const require = __dadiRequire(import.meta.url);",
          },
        }),
    plugins: [dynamicImportsOutside(o), moduleUrlsOutside(o)],
    logLevel: 'warning',
    legalComments: 'none',
    write: !cjs,
    minifyWhitespace: cjs,
  });
  if (!cjs) return;
  // What esbuild leaves of a dynamic import (always of a literal path here, dynamicImportsOutside)
  // becomes a call of the loader's import function.
  const text = (r.outputFiles ?? [])[0]!.text.replace(/\bimport\((?=["'])/g, '__dadiImport(');
  if (/\bimport\(/.test(text)) throw new Error(`${o.entry}: a dynamic import of a computed name cannot be bundled as cjs`);
  await mkdir(dirname(o.outfile), { recursive: true });
  await writeFile(o.outfile, text);
}

function withoutNodeOptions(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _, ...rest } = env;
  return rest;
}

/**
 * V8's code cache of a cjs bundle at `bundle` (NAME.bundle.cjs → NAME.bundle.cache), written by a
 * run of `start` with `warmUp` as arguments (a command that starts, parses and fails or answers
 * quickly without touching anything outside `scratch`): the cache then also holds the functions
 * that run called, which V8 would otherwise compile on their first call at every start.
 */
async function writeCodeCache(start: string, bundle: string, warmUp: (scratch: string) => string[]): Promise<void> {
  const name = basename(bundle, '.bundle.cjs');
  const cache = join(dirname(bundle), `${name}.bundle.cache`);
  const scratch = await mkdtemp(join(tmpdir(), 'dadi-code-cache-'));
  try {
    const tmp = join(scratch, 'cache');
    await new Promise<void>((res, rej) => {
      const child = spawn(process.execPath, [start, name, ...warmUp(scratch)], {
        stdio: 'ignore',
        // V8 takes its flags into the cache's check: none from NODE_OPTIONS, as bin/dadi gives none.
        env: { ...withoutNodeOptions(process.env), DADI_WRITE_CODE_CACHE: tmp },
      });
      child.once('error', rej);
      child.once('exit', () => res());
    });
    if (!existsSync(tmp)) throw new Error(`the warm-up run of ${bundle} wrote no code cache`);
    await rename(tmp, cache);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * The bundles of a tree (tsc's output, or the sources with `ext` '.ts') into `outDir`/cli, their
 * dynamic imports aimed at `runtimeRoot`.
 */
export async function bundleStartCommands(tree: { root: string; runtimeRoot: string; outDir: string; ext?: string }) {
  const ext = tree.ext ?? '.js';
  const from = { root: tree.root, runtimeRoot: tree.runtimeRoot };
  const start = join(tree.outDir, 'cli/start.cjs');
  await build({
    entryPoints: [join(tree.root, `cli/cached-start${ext}`)],
    outfile: start,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    legalComments: 'none',
  });
  const client = join(tree.outDir, 'cli/client.bundle.cjs');
  await bundleClientCommands({ entry: join(tree.root, `cli/client-entry${ext}`), outfile: client, from, format: 'cjs' });
  await writeCodeCache(start, client, (scratch) => ['ps', '--json', '--state', scratch]);
  // The pull is a request to the snapshotter (node built-ins); its in-process fallback is a dynamic import.
  const pull = join(tree.outDir, 'cli/pull.bundle.cjs');
  await bundleClientCommands({
    entry: join(tree.root, `cli/pull-entry${ext}`),
    outfile: pull,
    from,
    external: PULL_EXTERNAL,
    format: 'cjs',
  });
  // A pull whose snapshotter is not there: the CLI's parsing, the pull's start and its error.
  await writeCodeCache(start, pull, (scratch) => [
    'pull',
    '--containerd-address',
    join(scratch, 'containerd.sock'),
    '--snapshotter-address',
    join(scratch, 'snapshotter.sock'),
    '127.0.0.1:1/warm-up:latest',
  ]);
  await bundleClientCommands({
    entry: join(tree.root, `cli/convert-entry${ext}`),
    outfile: join(tree.outDir, 'cli/convert.bundle.js'),
    from,
    external: CONVERT_EXTERNAL,
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dist = resolve(process.argv[2] ?? 'dist');
  await bundleStartCommands({ root: dist, runtimeRoot: dist, outDir: dist });
}
