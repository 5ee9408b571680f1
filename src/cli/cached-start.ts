// How bin/dadi starts a bundled command (`node dist/cli/start.cjs NAME ARGS…`): it runs
// NAME.bundle.cjs beside it with V8's code cache from NAME.bundle.cache, both written by the build
// (scripts/bundle-cli.ts). Node 20 has no compile cache of its own: without one, every start parses
// and compiles the bundle again, and compiles each function it calls on the first call. The cache
// holds the bytecode of the functions a warm-up run of the build called. V8 checks it against the
// source, its own version and its flags, and compiles as usual if it does not match (`dadi` after a
// node upgrade). The bundle is a CommonJS module body (esbuild's cjs output), run here as node's
// module wrapper would run it, plus `__dadiImport`: the bundle's dynamic imports, since code compiled
// by vm.Script cannot import() on node 20 without an experimental flag.
//
// With DADI_DEBUG set, a missing or rejected cache is reported on stderr.
// The build's warm-up run sets DADI_WRITE_CODE_CACHE=FILE: the cache is then written to FILE as
// the process exits, with every function the run compiled.
//
// This file is bundled on its own as dist/cli/start.cjs (CommonJS: node loads it without its ES
// module loader, which the bundles do not need either).

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { hintDaemon } from './daemon-hint.js';
import { hintSnapshotter } from './pull-hint.js';

/** What wraps a bundle's source: node's CommonJS module wrapper and the dynamic-import function. */
const WRAP = ['(function (exports, require, module, __filename, __dirname, __dadiImport) {', '\n})'] as const;

function start(): void {
  const here = dirname(process.argv[1]!);
  const name = process.argv[2];
  if (!name || !/^[a-z-]+$/.test(name)) throw new Error(`usage: node ${process.argv[1]} NAME ARGS…`);
  // `run`/`mount`: the daemon connects to the image's registry while the bundle loads; `pull`: the
  // snapshotter resolves the image meanwhile. One turn of the event loop first, for the hint's
  // connect to complete and its message to leave: loading the bundle takes the thread for most of
  // the CLI's start.
  const args = process.argv.slice(3);
  const hinted = name === 'client' ? hintDaemon(args) : name === 'pull' && hintSnapshotter(args);
  if (hinted) setImmediate(() => load(here, name));
  else load(here, name);
}

function load(here: string, name: string): void {
  const file = join(here, `${name}.bundle.cjs`);
  const source = readFileSync(file, 'utf8');
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(join(here, `${name}.bundle.cache`));
  } catch {
    // No cache (a build without one): V8 compiles as it goes.
  }
  const script = new Script(WRAP[0] + source + WRAP[1], { filename: file, cachedData });
  if (process.env.DADI_DEBUG && (!cachedData || script.cachedDataRejected)) {
    console.error(`dadi: ${name}.bundle.cache ${cachedData ? 'rejected by V8' : 'missing'}: compiling without it`);
  }
  const writeTo = process.env.DADI_WRITE_CODE_CACHE;
  if (writeTo) process.once('exit', () => writeFileSync(writeTo, script.createCachedData()));
  // The bundle sees the argv it would see run as `node NAME.bundle.cjs ARGS…`.
  process.argv.splice(1, 2, file);
  const url = pathToFileURL(file);
  const module = { exports: {} };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(
    module.exports,
    module.exports,
    createRequire(file),
    module,
    file,
    here,
    (specifier: string) => import(new URL(specifier, url).href),
  );
}

start();
