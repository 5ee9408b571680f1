// The benchmark's application image: Debian bookworm minbase (debootstrap) plus python3, as an OCI
// layout with two layers (base; python3 added) made with umoci, built once and cached under the
// work folder. `pushImages` copies it to the registry as OCI (skopeo) and converts it with
// `dadi convert` (registry → registry). Not the timing: see run.ts.
//
//   node --import tsx bench/coldstart/image.ts      # build (or reuse) the layout, print its sizes

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { log, sh } from './util.js';

export const WORK = process.env.DADI_BENCH_DIR ?? '/var/tmp/dadi-bench';
export const LAYOUT = join(WORK, 'oci');
export const TAG = 'app';
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

/** Build the OCI layout (once; reused while `WORK/oci.done` exists). */
export async function buildImage(): Promise<ImageInfo> {
  const done = join(WORK, 'oci.done');
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
    await rm(rootfs, { recursive: true, force: true });
    await sh('cp', ['-a', full, rootfs]);
    await sh('umoci', ['repack', '--history.created_by', 'apt-get install python3', '--image', image, bundle]);
    await sh('umoci', [
      'config',
      '--image',
      image,
      '--config.cmd',
      'python3',
      '--config.env',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--config.env',
      'LANG=C.UTF-8',
      '--config.workingdir',
      '/',
    ]);
    await sh('umoci', ['gc', '--layout', LAYOUT]);
    await rm(bundle, { recursive: true, force: true });
    await writeFile(done, '');
  }
  return describe();
}

async function blob(digest: string): Promise<Buffer> {
  return readFile(join(LAYOUT, 'blobs', ...digest.split(':')));
}

async function describe(): Promise<ImageInfo> {
  const index = JSON.parse(await readFile(join(LAYOUT, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === TAG);
  if (!m) throw new Error(`${LAYOUT}: no manifest tagged ${TAG}`);
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
    tag: TAG,
    layersUncompressed,
    layersCompressed: manifest.layers.map((l) => l.size),
    manifestDigest: m.digest,
  };
}

/** The dadi CLI as argv (built JS when `dist/` is fresh, else the TypeScript entry through tsx). */
export function dadiCommand(): string[] {
  const built = process.env.DADI_BENCH_CLI;
  if (built) return [process.execPath, built];
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return [process.execPath, '--import', tsx, join(REPO_ROOT, 'src/cli/entry.ts')];
}

/**
 * Push the layout to `registry` (host:port as seen from `netns`) as `app:oci`, then convert it to
 * `app:dadi`. Skipped when `WORK/pushed.json` records the same layout digest (registry storage persists).
 */
export async function pushImages(
  img: ImageInfo,
  registry: string,
  netns: string,
): Promise<{ oci: string; dadi: string; convertS: number | undefined }> {
  const oci = `${registry}/app:oci`;
  const dadi = `${registry}/app:dadi`;
  const marker = join(WORK, 'pushed.json');
  const prev = existsSync(marker)
    ? (JSON.parse(await readFile(marker, 'utf8')) as { digest: string; convertS?: number })
    : undefined;
  if (prev?.digest === img.manifestDigest) return { oci, dadi, convertS: prev.convertS };
  log(`skopeo copy → docker://${oci}`);
  await sh(
    'skopeo',
    ['copy', '--quiet', '--dest-tls-verify=false', `oci:${img.layout}:${img.tag}`, `docker://${oci}`],
    {
      netns,
    },
  );
  log(`dadi convert ${oci} ${dadi}`);
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
  await writeFile(marker, `${JSON.stringify({ digest: img.manifestDigest, convertS })}\n`);
  return { oci, dadi, convertS };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const info = await buildImage();
  console.log(JSON.stringify(info, null, 2));
}
