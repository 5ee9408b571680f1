// The benchmark's images, in one OCI layout made with umoci and cached under the work folder:
// `base`, the Debian bookworm minbase (debootstrap, one layer), and `app`, base plus python3 (two
// layers). `pushImage` copies a tag to the registry as OCI (skopeo) and converts it with
// `dadi convert` (registry → registry), again whenever the converter's sources changed. Not the
// timing: see run.ts.
//
//   node --import tsx bench/coldstart/image.ts      # build (or reuse) the layout, print its sizes

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundleStartCommands } from '../../scripts/bundle-cli.js';
import { log, sh } from './util.js';

export const WORK = process.env.DADI_BENCH_DIR ?? '/var/tmp/dadi-bench';
export const LAYOUT = join(WORK, 'oci');
export const TAG = 'app';
/** The Debian minbase alone (the first layer of `app`). */
export const BASE_TAG = 'base';
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');

export interface ImageInfo {
  layout: string;
  tag: string;
  /** Uncompressed bytes of the layer tars, and compressed (gzip) bytes as stored. */
  layersUncompressed: number[];
  layersCompressed: number[];
  manifestDigest: string;
}

async function mirror(): Promise<string> {
  const text = await readFile('/etc/apt/sources.list.d/debian.sources', 'utf8').catch(() => '');
  const m = /^URIs:\s*(\S+)/m.exec(text);
  return m?.[1] ?? 'http://deb.debian.org/debian';
}

/** Build the OCI layout with tags `base` and `app` (once; reused while its marker exists). */
export async function buildImage(): Promise<Record<string, ImageInfo>> {
  const done = join(WORK, 'oci-with-base.done');
  if (!existsSync(done)) {
    await mkdir(WORK, { recursive: true });
    const base = join(WORK, 'rootfs-base');
    const full = join(WORK, 'rootfs-python');
    if (!existsSync(join(WORK, 'rootfs-base.done'))) {
      await rm(base, { recursive: true, force: true });
      log(`debootstrap minbase bookworm → ${base}`);
      await sh('debootstrap', ['--variant=minbase', 'bookworm', base, await mirror()]);
      await sh('sh', ['-c', `rm -rf ${base}/var/cache/apt/archives/*.deb ${base}/var/lib/apt/lists/*_Packages`]);
      await writeFile(join(WORK, 'rootfs-base.done'), '');
    }
    if (!existsSync(join(WORK, 'rootfs-python.done'))) {
      await rm(full, { recursive: true, force: true });
      log('adding python3 (apt-get in a chroot of a copy)');
      await sh('cp', ['-a', base, full]);
      await sh('chroot', [full, 'apt-get', 'update', '-q']);
      await sh('chroot', [full, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', 'python3'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      // As a Dockerfile would: no package lists or apt caches in the layer.
      await sh('chroot', [full, 'apt-get', 'clean']);
      await sh('sh', ['-c', `rm -rf ${full}/var/lib/apt/lists/* ${full}/var/cache/apt/*.bin`]);
      await writeFile(join(WORK, 'rootfs-python.done'), '');
    }
    log(`umoci layout ${LAYOUT}:${TAG} (2 layers)`);
    await rm(LAYOUT, { recursive: true, force: true });
    const bundle = join(WORK, 'umoci-bundle');
    await rm(bundle, { recursive: true, force: true });
    const image = `${LAYOUT}:${TAG}`;
    await sh('umoci', ['init', '--layout', LAYOUT]);
    await sh('umoci', ['new', '--image', image]);
    await sh('umoci', ['unpack', '--image', image, bundle]);
    const rootfs = join(bundle, 'rootfs');
    await rm(rootfs, { recursive: true, force: true });
    await sh('cp', ['-a', base, rootfs]);
    await sh('umoci', [
      'repack',
      '--refresh-bundle',
      '--history.created_by',
      'debootstrap minbase',
      '--image',
      image,
      bundle,
    ]);
    // The minbase alone is the `cat` workload's image.
    await sh('umoci', ['tag', '--image', image, BASE_TAG]);
    await rm(rootfs, { recursive: true, force: true });
    await sh('cp', ['-a', full, rootfs]);
    await sh('umoci', ['repack', '--history.created_by', 'apt-get install python3', '--image', image, bundle]);
    for (const [tag, cmd] of [
      [BASE_TAG, 'sh'],
      [TAG, 'python3'],
    ]) {
      await sh('umoci', [
        'config',
        '--image',
        `${LAYOUT}:${tag}`,
        '--config.cmd',
        cmd!,
        '--config.env',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--config.env',
        'LANG=C.UTF-8',
        '--config.workingdir',
        '/',
      ]);
    }
    await sh('umoci', ['gc', '--layout', LAYOUT]);
    await rm(bundle, { recursive: true, force: true });
    await writeFile(done, '');
  }
  return { [BASE_TAG]: await describe(BASE_TAG), [TAG]: await describe(TAG) };
}

async function blob(digest: string): Promise<Buffer> {
  return readFile(join(LAYOUT, 'blobs', ...digest.split(':')));
}

async function describe(tag: string): Promise<ImageInfo> {
  const index = JSON.parse(await readFile(join(LAYOUT, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`${LAYOUT}: no manifest tagged ${tag}`);
  const manifest = JSON.parse((await blob(m.digest)).toString('utf8')) as {
    layers: { digest: string; size: number }[];
  };
  const layersUncompressed: number[] = [];
  for (const l of manifest.layers) {
    const r = await sh('sh', ['-c', `gzip -dc ${join(LAYOUT, 'blobs', ...l.digest.split(':'))} | wc -c`]);
    layersUncompressed.push(Number(r.stdout.trim()));
  }
  return {
    layout: LAYOUT,
    tag,
    layersUncompressed,
    layersCompressed: manifest.layers.map((l) => l.size),
    manifestDigest: m.digest,
  };
}

/**
 * The dadi CLI as argv: a build's `bin/dadi` launcher (what `npm ci` installs as the command), else
 * its `cli/entry.js` through node, else the TypeScript entry through tsx.
 */
export function dadiCommand(): string[] {
  const built = process.env.DADI_BENCH_CLI;
  if (built) {
    const launcher = join(built, '../../../bin/dadi');
    return existsSync(launcher) ? [launcher] : [process.execPath, built];
  }
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return [process.execPath, '--import', tsx, join(REPO_ROOT, 'src/cli/entry.ts')];
}

/**
 * Build the CLI to JavaScript once per benchmark run (what `npm ci` installs) and make
 * `dadiCommand()` use it, so that no contestant pays for tsx. `name`: the output folder under
 * node_modules/.cache (one per benchmark, so two benchmarks running at once do not collide).
 */
export async function buildCli(name = 'dadi-bench'): Promise<void> {
  const top = join(REPO_ROOT, 'node_modules/.cache', name);
  const out = join(top, 'dist');
  log('building the dadi CLI (tsc, then the bundles) for the benchmark');
  await rm(top, { recursive: true, force: true });
  await sh(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', out], {
    allowFail: true,
  });
  const entry = join(out, 'cli/entry.js');
  if (!existsSync(entry)) throw new Error(`tsc did not produce ${entry}`);
  // The rest of `npm run build`, and the launcher beside it, as an installed dadi has them.
  await bundleStartCommands({ root: out, runtimeRoot: out, outDir: out });
  await mkdir(join(top, 'bin'), { recursive: true });
  for (const f of ['dadi', 'dadi.js']) await copyFile(join(REPO_ROOT, 'bin', f), join(top, 'bin', f));
  process.env.DADI_BENCH_CLI = entry;
}

/** What decides the bytes `dadi convert` produces: its sources, the layer output format and the version. */
const CONVERTER_SOURCES = ['src/convert', 'src/format', 'src/ext4', 'src/image/layer-output.ts', 'package.json'];

/**
 * A hash of the converter's sources (including DADI_LAYER_OUTPUT in src/image/layer-output.ts and
 * the version in package.json): a converted image is reused only while this is unchanged.
 */
export async function converterKey(): Promise<string> {
  const h = createHash('sha256');
  const files: string[] = [];
  for (const p of CONVERTER_SOURCES) {
    const abs = join(REPO_ROOT, p);
    if ((await stat(abs)).isDirectory()) {
      for (const f of await readdir(abs, { recursive: true })) {
        if (f.endsWith('.ts') && !f.endsWith('.test.ts')) files.push(join(abs, f));
      }
    } else files.push(abs);
  }
  for (const f of files.sort()) h.update(`${relative(REPO_ROOT, f)}\0`).update(await readFile(f));
  return h.digest('hex').slice(0, 16);
}

export interface PushedImage {
  /** `REG/NAME:oci` (the gzip OCI image) and `REG/NAME:dadi` (converted). */
  oci: string;
  dadi: string;
  convertS: number | undefined;
}

/**
 * Push the layout's `tag` to `registry` (host:port as seen from `netns`) as `tag:oci`, then convert
 * it to `tag:dadi`. Skipped when `WORK/pushed-TAG.json` records the same layout digest and converter
 * key (registry storage persists).
 */
export async function pushImage(img: ImageInfo, registry: string, netns: string): Promise<PushedImage> {
  const oci = `${registry}/${img.tag}:oci`;
  const dadi = `${registry}/${img.tag}:dadi`;
  const marker = join(WORK, `pushed-${img.tag}.json`);
  const key = await converterKey();
  const prev = existsSync(marker)
    ? (JSON.parse(await readFile(marker, 'utf8')) as { digest: string; converter?: string; convertS?: number })
    : undefined;
  if (prev?.digest === img.manifestDigest && prev.converter === key) return { oci, dadi, convertS: prev.convertS };
  log(`skopeo copy → docker://${oci}`);
  await sh(
    'skopeo',
    ['copy', '--quiet', '--dest-tls-verify=false', `oci:${img.layout}:${img.tag}`, `docker://${oci}`],
    { netns },
  );
  log(`dadi convert ${oci} ${dadi} (converter ${key})`);
  const [cmd, ...args] = dadiCommand();
  let convertS: number | undefined;
  for (let attempt = 1; convertS === undefined; attempt++) {
    const t0 = performance.now();
    const r = await sh(cmd!, [...args, 'convert', '--no-reuse', '-q', oci, dadi], {
      netns,
      env: { ...process.env, HOME: WORK },
      allowFail: attempt < 2,
    });
    if (r.code === 0) convertS = (performance.now() - t0) / 1000;
    else log(`dadi convert failed (${r.code}), retrying once: ${r.stderr.trim().slice(-500)}`);
  }
  await writeFile(marker, `${JSON.stringify({ digest: img.manifestDigest, converter: key, convertS })}\n`);
  return { oci, dadi, convertS };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const info = await buildImage();
  console.log(JSON.stringify(info, null, 2));
}
