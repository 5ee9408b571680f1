// The reference's side of the conversion benchmark: the procedure of the reference's userspace
// convertor (accelerated-container-image, cmd/convertor/builder/overlaybd_builder.go) driven by
// hand over an OCI layout, one process per step as that convertor runs them. Per layer: decompress
// the blob into layer.tar while checking its digest (the convertor's download tees into a
// verifier), `overlaybd-create -s [--mkfs] data index 64`, a config.json of the committed layers
// below and the new upper, `overlaybd-apply layer.tar config.json`, `overlaybd-commit -z --algorithm
// A --bs B -t --uuid [--parent-uuid]` (A, B: dadi convert's own ZFile settings), then the commit
// file's digest (the convertor's getFileDesc). No uploads.
//
// The tools build offline from containerd/overlaybd with its dependencies' sources at the commits
// its CMake files pin (PhotonLibOS, photon-libtcmu, erofs-utils; Open-CAS ocf in its submodule
// folder): `cmake SRC -DCMAKE_BUILD_TYPE=Release -DBUILD_STREAM_CONVERTOR=OFF -DORIGIN_EXT2FS=ON
// -DFETCHCONTENT_FULLY_DISCONNECTED=ON -DFETCHCONTENT_SOURCE_DIR_PHOTON=… -DFETCHCONTENT_SOURCE_DIR_TCMU=…
// -DFETCHCONTENT_SOURCE_DIR_EROFS-UTILS=…` and `make overlaybd-create overlaybd-apply overlaybd-commit`
// (apt: cmake g++ libcurl4-openssl-dev libssl-dev libaio-dev libnl-3-dev libnl-genl-3-dev zlib1g-dev
// libzstd-dev libext2fs-dev libgflags-dev rapidjson-dev autoconf automake libtool); the binaries land
// in SRC/build/output.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chainIds, uuidFromChainId } from '../../src/convert/manifest.js';
import { DADI_LAYER_OUTPUT } from '../../src/image/layer-output.js';
import type { Digest } from '../../src/oci/digest.js';
import { sh } from '../coldstart/util.js';

/**
 * Run a command to completion under /usr/bin/time: its output and the CPU seconds (user + system)
 * it and its children used. The machine is shared, so CPU time says what wall time cannot.
 */
export async function timed(cmd: string, args: string[]): Promise<{ stdout: string; cpu: number }> {
  const r = await sh('/usr/bin/time', ['-f', '\ncpu %U %S', cmd, ...args]);
  const m = /\ncpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (!m) throw new Error(`${cmd}: no CPU time in its stderr`);
  return { stdout: r.stdout, cpu: Number(m[1]) + Number(m[2]) };
}

export const REFERENCE_TOOLS = ['overlaybd-create', 'overlaybd-apply', 'overlaybd-commit'] as const;

/** Why the reference tools in `dir` cannot run, or undefined when they are all there. */
export function referenceMissing(dir: string): string | undefined {
  const gone = REFERENCE_TOOLS.filter((t) => !existsSync(join(dir, t)));
  return gone.length ? `${gone.join(', ')} not found in ${dir}` : undefined;
}

/**
 * overlaybd-apply checks that its default service config (/etc/overlaybd/overlaybd.json) exists even
 * when given another one. Create an empty-ish one if missing; returns how to put things back.
 */
export async function ensureServiceConfig(): Promise<() => Promise<void>> {
  const path = '/etc/overlaybd/overlaybd.json';
  if (existsSync(path)) return async () => {};
  const made = !existsSync('/etc/overlaybd');
  await mkdir('/etc/overlaybd', { recursive: true });
  await writeFile(path, '{}\n');
  return async () => {
    await rm(made ? '/etc/overlaybd' : path, { recursive: true, force: true });
  };
}

export interface LayoutImage {
  layout: string;
  tag: string;
  /** Layer blobs, bottom first. */
  layers: { digest: string; size: number }[];
  diffIds: Digest[];
}

/** Read the manifest and config of `layout:tag` (a single-platform image, as the bench builds). */
export async function readLayoutImage(layout: string, tag: string): Promise<LayoutImage> {
  const blob = (d: string) => readFile(join(layout, 'blobs', 'sha256', d.slice('sha256:'.length)), 'utf8');
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`${layout}: no tag ${tag}`);
  const manifest = JSON.parse(await blob(m.digest)) as {
    config: { digest: string };
    layers: { digest: string; size: number }[];
  };
  const config = JSON.parse(await blob(manifest.config.digest)) as { rootfs: { diff_ids: Digest[] } };
  return { layout, tag, layers: manifest.layers, diffIds: config.rootfs.diff_ids };
}

export interface ReferenceRun {
  seconds: number;
  /** CPU seconds of all steps. */
  cpu: number;
  /** Bytes of each layer's overlaybd.commit. */
  layerBytes: number[];
}

/** Convert `img` with the reference tools in `bin`, working under `work` (removed afterwards). */
export async function runReference(img: LayoutImage, bin: string, work: string): Promise<ReferenceRun> {
  await mkdir(work, { recursive: true });
  const service = join(work, 'overlaybd.json');
  // overlaybd-apply insists on a service config file; logs stay inside the work folder.
  await writeFile(service, JSON.stringify({ logConfig: { logLevel: 2, logPath: join(work, 'overlaybd.log') } }));
  const chains = chainIds(img.diffIds);
  const tool = (name: string) => join(bin, name);
  const lowers: { file: string }[] = [];
  const layerBytes: number[] = [];
  let cpu = 0;
  const step = async (cmd: string, args: string[]) => {
    const r = await timed(cmd, args);
    cpu += r.cpu;
    return r;
  };
  const t0 = performance.now();
  try {
    for (const [i, layer] of img.layers.entries()) {
      const dir = join(work, `${String(i).padStart(4, '0')}_layer`);
      await mkdir(dir, { recursive: true });
      const blob = join(img.layout, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
      const tar = join(dir, 'layer.tar');
      const [check] = await Promise.all([
        step('sha256sum', [blob]),
        step('sh', ['-c', 'gzip -dc < "$1" > "$2"', 'sh', blob, tar]),
      ]);
      if (`sha256:${check.stdout.split(' ')[0]}` !== layer.digest) throw new Error(`${blob}: digest mismatch`);
      const data = join(dir, 'writable_data');
      const index = join(dir, 'writable_index');
      await step(tool('overlaybd-create'), [data, index, '64', '-s', ...(i === 0 ? ['--mkfs'] : [])]);
      const config = join(dir, 'config.json');
      await writeFile(
        config,
        JSON.stringify({ repoBlobUrl: '', lowers, upper: { index, data }, resultFile: join(dir, 'result') }),
      );
      await step(tool('overlaybd-apply'), [tar, config, '--service_config_path', service]);
      const commit = join(dir, 'overlaybd.commit');
      const uuid = uuidFromChainId(chains[i]!);
      const parent = i > 0 ? ['--parent-uuid', uuidFromChainId(chains[i - 1]!)] : [];
      // The ZFile settings dadi convert uses (DADI_LAYER_OUTPUT), so both sides compress alike.
      const { algorithm, blockSize } = DADI_LAYER_OUTPUT.zfile;
      const zfile = ['-z', '--algorithm', algorithm, '--bs', String(blockSize / 1024)];
      await step(tool('overlaybd-commit'), [data, index, commit, ...zfile, '-t', '--uuid', uuid, ...parent]);
      await step('sha256sum', [commit]);
      await rm(tar, { force: true });
      layerBytes.push((await stat(commit)).size);
      lowers.push({ file: commit });
    }
    return { seconds: (performance.now() - t0) / 1000, cpu, layerBytes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
