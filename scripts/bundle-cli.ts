// The build's second step (after tsc): the daemon's client commands (`dadi run|mount|umount|ps|rm`,
// dispatched by bin/dadi) as ONE file, dist/cli/client.bundle.js. Node loads a module graph file by
// file, and `dadi run` counts every millisecond of its start: one file with commander inside loads
// in about half the time of the ~20 modules it replaces. Only the static graph is bundled; a dynamic
// import (the daemon, commit, progress bars) stays an import of the tsc output next to it, so each
// module still loads once per process.
//
//   node --import tsx scripts/bundle-cli.ts [DIST]      # default: dist

import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

export interface BundleOptions {
  /** The client commands' entry (the tsc output's cli/client-entry.js, or its .ts source). */
  entry: string;
  outfile: string;
  /** Where the entry's tree lives, and where its dynamic imports are to be loaded from at run time. */
  from: { root: string; runtimeRoot: string };
}

/** Dynamic imports of our own modules stay imports, re-aimed from the bundle's place at runtimeRoot. */
function dynamicImportsOutside(o: BundleOptions): Plugin {
  return {
    name: 'dynamic-imports-outside',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.kind !== 'dynamic-import') return undefined;
        const target = join(o.from.runtimeRoot, relative(o.from.root, resolve(args.resolveDir, args.path)));
        const path = relative(dirname(o.outfile), target).split(sep).join('/');
        return { path: path.startsWith('.') ? path : `./${path}`, external: true };
      });
    },
  };
}

export async function bundleClientCommands(o: BundleOptions): Promise<void> {
  await build({
    entryPoints: [o.entry],
    outfile: o.outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Packages with native code stay in node_modules; commander (pure JS, CommonJS) comes inside,
    // and CommonJS inside an ES module needs a `require`.
    external: ['lz4', 'zstd-napi', '@node-rs/*', '@grpc/*', 'undici', 'pino', 'prom-client', 'zod', 'yaml'],
    banner: { js: "import { createRequire as __dadiRequire } from 'node:module'; const require = __dadiRequire(import.meta.url);" },
    plugins: [dynamicImportsOutside(o)],
    logLevel: 'warning',
    legalComments: 'none',
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dist = resolve(process.argv[2] ?? 'dist');
  await bundleClientCommands({
    entry: join(dist, 'cli/client-entry.js'),
    outfile: join(dist, 'cli/client.bundle.js'),
    from: { root: dist, runtimeRoot: dist },
  });
}
