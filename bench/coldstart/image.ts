// The benchmark's images, in one OCI layout made with umoci and cached under the work folder:
// `base`, the Debian bookworm minbase (debootstrap, one layer), and `app`, base plus python3 (two
// layers). `pushImage` copies a tag to the registry as OCI (skopeo) and converts it with
// `dadi convert` (registry → registry), again whenever the converter's sources changed. Not the
// timing: see run.ts.
//
//   node --import tsx bench/coldstart/image.ts      # build (or reuse) the layout, print its sizes

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
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

/** The digest of the layout's manifest tagged `tag`. */
async function manifestDigest(tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(LAYOUT, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`${LAYOUT}: no manifest tagged ${tag}`);
  return m.digest;
}

async function describe(tag: string): Promise<ImageInfo> {
  const digest = await manifestDigest(tag);
  const manifest = JSON.parse((await blob(digest)).toString('utf8')) as {
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
    manifestDigest: digest,
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

/** The root filesystem each tag's layers were made from (its last layer's state). */
const ROOTFS: Record<string, string> = { [BASE_TAG]: 'rootfs-base', [TAG]: 'rootfs-python' };

/**
 * `img` with the parent directories each layer leaves out added to its tar, as the layers `docker
 * build` writes have them: umoci's diff layers hold only what changed, so `app`'s python layer has
 * `usr/bin/` but not `usr/`. Valid OCI, but `ctr-remote image optimize` cannot sort such a layer
 * ("failed to sort tar entries: file \"usr\": not found"). The files are the same; the new layer
 * starts with the missing directories (metadata from the tag's root filesystem, which they are
 * unchanged in). Returns the tag to use: `img.tag` itself when no layer misses a parent, else
 * `TAG-parents` in the same layout (made once per source manifest).
 */
export async function withParentDirs(img: ImageInfo): Promise<string> {
  const derived = `${img.tag}-parents`;
  const marker = join(WORK, `oci-${derived}.done`);
  if (existsSync(marker)) {
    const made = (await readFile(marker, 'utf8')).trim();
    const there = await manifestDigest(derived).then(
      () => true,
      () => false,
    );
    if (made === img.manifestDigest && there) return derived;
    if (made === `${img.manifestDigest} complete`) return img.tag;
  }
  const manifest = JSON.parse((await blob(img.manifestDigest)).toString('utf8')) as {
    config: { digest: string; size: number };
    layers: { digest: string; size: number }[];
  };
  const config = JSON.parse((await blob(manifest.config.digest)).toString('utf8')) as {
    rootfs: { diff_ids: string[] };
  };
  const rootfs = join(WORK, ROOTFS[img.tag] ?? '');
  let changed = false;
  for (const [i, layer] of manifest.layers.entries()) {
    const path = join(LAYOUT, 'blobs', ...layer.digest.split(':'));
    const listed = (await sh('tar', ['-tzf', path])).stdout.split('\n').filter(Boolean);
    const names = new Set(listed.map((n) => n.replace(/^\.\//, '').replace(/\/$/, '')));
    const missing = new Set<string>();
    for (const n of names) {
      for (let p = n.lastIndexOf('/'); p > 0; p = n.lastIndexOf('/', p - 1)) {
        const parent = n.slice(0, p);
        if (!names.has(parent)) missing.add(parent);
      }
    }
    if (missing.size === 0) continue;
    log(`${img.tag}: layer ${i + 1} misses ${missing.size} parent directories; adding them`);
    const tmp = join(WORK, `parents-${process.pid}`);
    await mkdir(tmp, { recursive: true });
    try {
      // Blocking factor 1: the archive ends in exactly two zero blocks, which are cut before the
      // layer's own entries follow. Sorted: a parent comes before its children.
      const dirs = join(tmp, 'dirs');
      await writeFile(dirs, `${[...missing].sort().join('\n')}\n`);
      const prefix = join(tmp, 'prefix.tar');
      await sh('tar', [
        '-c',
        '-b',
        '1',
        '--format=ustar',
        '--numeric-owner',
        '--no-recursion',
        '-C',
        rootfs,
        '-T',
        dirs,
        '-f',
        prefix,
      ]);
      const cut = (await stat(prefix)).size - 1024;
      const tar = join(tmp, 'layer.tar');
      await sh('sh', ['-c', `{ head -c ${cut} "$1"; gzip -dc "$2"; } > "$3"`, 'sh', prefix, path, tar]);
      const diffId = `sha256:${(await sh('sha256sum', [tar])).stdout.split(' ')[0]}`;
      await sh('sh', ['-c', 'gzip -n -c "$1" > "$2"', 'sh', tar, `${tar}.gz`]);
      const gz = await readFile(`${tar}.gz`);
      manifest.layers[i] = { ...layer, digest: await putBlob(gz), size: gz.length };
      config.rootfs.diff_ids[i] = diffId;
      changed = true;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  if (!changed) {
    await writeFile(marker, `${img.manifestDigest} complete\n`);
    return img.tag;
  }
  const configBytes = Buffer.from(JSON.stringify(config));
  manifest.config = { ...manifest.config, digest: await putBlob(configBytes), size: configBytes.length };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const digest = await putBlob(manifestBytes);
  const indexPath = join(LAYOUT, 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as {
    manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  };
  const refName = 'org.opencontainers.image.ref.name';
  index.manifests = index.manifests.filter((m) => m.annotations?.[refName] !== derived);
  index.manifests.push({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest,
    size: manifestBytes.length,
    annotations: { [refName]: derived },
  });
  // Other benchmarks read the layout's index as this runs: a whole new file, renamed into place.
  await writeFile(`${indexPath}.tmp`, JSON.stringify(index));
  await rename(`${indexPath}.tmp`, indexPath);
  await writeFile(marker, `${img.manifestDigest}\n`);
  return derived;
}

/** Store `data` as a blob of the layout; returns its digest. */
async function putBlob(data: Buffer): Promise<string> {
  const hex = createHash('sha256').update(data).digest('hex');
  await writeFile(join(LAYOUT, 'blobs', 'sha256', hex), data);
  return `sha256:${hex}`;
}

/**
 * Push the layout's `tag` to `registry` as REPO:`as` with skopeo (no conversion), unless
 * `WORK/pushed-REPO-AS.json` records the same manifest: the source of a peer's own conversion.
 */
export async function pushOci(tag: string, repo: string, as: string, registry: string, netns: string): Promise<string> {
  const ref = `${registry}/${repo}:${as}`;
  const digest = await manifestDigest(tag);
  const marker = join(WORK, `pushed-${repo}-${as}.json`);
  if (existsSync(marker) && (await readFile(marker, 'utf8')).trim() === digest) return ref;
  log(`skopeo copy → docker://${ref}`);
  await sh('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${LAYOUT}:${tag}`, `docker://${ref}`], {
    netns,
  });
  await writeFile(marker, `${digest}\n`);
  return ref;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const info = await buildImage();
  console.log(JSON.stringify(info, null, 2));
}
