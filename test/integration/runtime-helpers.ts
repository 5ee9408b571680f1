// Shared fixtures for the runtime tests and bench: a tiny rootfs built from host binaries (dash,
// coreutils and their shared libraries found with ldd), turned into an ext4 image and a DADI layer
// (ZFile + tar), plus leftover detection and emergency cleanup (mounts, loops, runc, cgroups, daemon).

import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  detachLoop,
  forceUnmountFuse,
  loopDevicesUnder,
  readMounts,
  runProgram,
  scrubDevices,
} from '../../src/export/index.js';
import { randomUuid, WritableLayer } from '../../src/format/lsmt/index.js';
import { importRawImage } from '../../src/image/import-raw.js';
import { openLayerOutput } from '../../src/image/layer-output.js';
import {
  cgroupDirs,
  DaemonClient,
  listContainers,
  removeCgroup,
  runcDelete,
  runcList,
  statePaths,
} from '../../src/runtime/index.js';
import { mkfsFromDir } from '../ext4-tools.js';
import { pushImage } from './push-image.js';

export const BINARIES = ['sh', 'cat', 'ls', 'env', 'rm', 'mkdir', 'true', 'sleep', 'id', 'wc', 'touch', 'echo'];

async function sh(cmd: string): Promise<string> {
  const r = await runProgram('sh', ['-c', cmd], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A minimal rootfs with merged /usr, host binaries and libs, /etc/passwd, /etc/group, /etc/os-release. */
export async function buildRootfs(dir: string): Promise<void> {
  for (const d of [
    'usr/bin',
    'usr/lib',
    'usr/lib64',
    'usr/sbin',
    'etc',
    'proc',
    'sys',
    'dev',
    'tmp',
    'root',
    'home/app',
    'data',
  ]) {
    await mkdir(join(dir, d), { recursive: true });
  }
  for (const l of ['bin', 'lib', 'lib64', 'sbin']) await symlink(`usr/${l}`, join(dir, l));
  const files = new Set<string>();
  for (const b of BINARIES) {
    const path = (await sh(`command -v ${b} || true`)).trim();
    const hostPath = path.startsWith('/') ? path : `/usr/bin/${b}`;
    files.add(`/usr/bin/${b}=${hostPath}`);
    for (const m of (await sh(`ldd ${hostPath} || true`)).matchAll(/(\/\S+) \(0x/g)) files.add(`${m[1]}=${m[1]}`);
  }
  for (const f of files) {
    const [dst, src] = f.split('=') as [string, string];
    // Copy through the rootfs's own /lib -> usr/lib symlinks: the content lands under usr/.
    const target = join(dir, dst.replace(/^\/(bin|lib|lib64|sbin)\//, '/usr/$1/'));
    await mkdir(dirname(target), { recursive: true });
    await copyFile(src, target); // copyFile follows symlinks of the source
    await sh(`chmod 755 '${target}'`);
  }
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
  await writeFile(join(dir, 'etc/os-release'), 'PRETTY_NAME="dadi test rootfs"\nID=dadi-test\n');
  await writeFile(join(dir, 'data/keep.txt'), 'keep me\n');
  await writeFile(join(dir, 'data/doomed.txt'), 'delete me\n');
  await sh(`chown -R 1000:1000 '${join(dir, 'home/app')}'; chmod 1777 '${join(dir, 'tmp')}'`);
}

/** mkfs.ext4 the folder into `image` (64 MiB). */
export async function makeExt4(srcDir: string, image: string, size = '64M'): Promise<void> {
  await mkfsFromDir(srcDir, image, size);
}

/** A raw ext4 image as one committed DADI layer (ZFile + tar) at `out`; returns its uuid. */
export async function imageToLayer(image: string, out: string): Promise<string> {
  const size = Number((await sh(`stat -c %s '${image}'`)).trim());
  const tmp = `${out}.rw`;
  const rw = await WritableLayer.create(`${tmp}.data`, `${tmp}.index`, { virtualSize: size });
  const uuid = randomUuid();
  try {
    await importRawImage(image, rw);
    await rw.commit(await openLayerOutput(out, { zfile: {}, tar: true }), { uuid });
  } finally {
    await rw.close();
    await rm(`${tmp}.data`, { force: true });
    await rm(`${tmp}.index`, { force: true });
  }
  return uuid;
}

/**
 * The buildRootfs tree as a one-layer DADI image pushed to `registry` as `repository:v1` (work files
 * under `root`); returns its reference.
 */
export async function pushRootfsImage(
  root: string,
  registry: string,
  repository: string,
  runConfig: Record<string, unknown>,
): Promise<string> {
  const rootfs = join(root, 'rootfs');
  await buildRootfs(rootfs);
  await makeExt4(rootfs, join(root, 'disk.img'));
  await imageToLayer(join(root, 'disk.img'), join(root, 'layer.tar'));
  return (await pushImage(registry, repository, 'v1', [join(root, 'layer.tar')], runConfig)).ref;
}

/**
 * Everything of ours still alive under a state folder (empty = clean). Only what this state folder
 * made counts: its mounts, loops, runc containers, daemon, and the cgroups of `containerNames` and
 * of the containers it still records (a container whose clean-up failed keeps its record, so an
 * auto-named `--rm` container that left cgroups is found too). The shared `/dadi` cgroup parent is
 * not ours: tests in other files may run containers under it at the same time.
 */
export async function leftovers(stateDir: string, containerNames: string[]): Promise<string[]> {
  const p = statePaths(stateDir);
  const out: string[] = [];
  for (const m of await readMounts()) {
    if (m.mountPoint.startsWith(`${p.root}/`) || m.mountPoint.startsWith(`${dirname(p.root)}/`)) {
      out.push(`mount ${m.fsType} ${m.mountPoint}`);
    }
  }
  for (const l of await loopDevicesUnder(p.root)) out.push(`loop ${l}`);
  for (const c of await runcList(p.runc).catch(() => [])) out.push(`runc ${c.id} ${c.status}`);
  for (const cg of await ownCgroups(stateDir, containerNames))
    for (const d of await cgroupDirs(cg)) out.push(`cgroup ${d}`);
  const pid = Number((await readFile(p.pidFile, 'utf8').catch(() => '')).trim());
  if (pid > 0 && pidAlive(pid)) out.push(`daemon pid ${pid}`);
  return out;
}

/** The cgroup paths of the named containers and of every container the state folder records. */
async function ownCgroups(stateDir: string, containerNames: string[]): Promise<string[]> {
  const paths = new Set(containerNames.map((n) => `/dadi/${n}`));
  for (const rec of await listContainers({ stateDir }).catch(() => [])) paths.add(rec.cgroupsPath);
  return [...paths];
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Last-resort cleanup after a failed test: kill the daemon we started (by its pid), runc
 * containers of this state folder, their cgroups, then mounts/loops/FUSE under the folder.
 */
export async function emergencyCleanup(stateDir: string, containerNames: string[], daemonPid?: number): Promise<void> {
  const p = statePaths(stateDir);
  for (const c of await runcList(p.runc).catch(() => [])) await runcDelete(p.runc, c.id).catch(() => {});
  for (const cg of await ownCgroups(stateDir, containerNames)) await removeCgroup(cg).catch(() => {});
  const pid = daemonPid ?? Number((await readFile(p.pidFile, 'utf8').catch(() => '')).trim());
  // Unmount the ext4/overlay first (the FUSE server still serves), then stop the server.
  await scrubDevices(p.root).catch(() => {});
  if (pid > 0 && pidAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  for (const m of await readMounts()) if (m.mountPoint.startsWith(`${p.root}/`)) await forceUnmountFuse(m.mountPoint);
  for (const l of await loopDevicesUnder(p.root)) await detachLoop(l).catch(() => {});
}

/** Teardown: shut down the state folder's daemon if one answers, then remove whatever it left. */
export async function shutDownAndScrub(stateDir: string, containerNames: string[], daemonPid?: number): Promise<void> {
  const client = await DaemonClient.connect({ stateDir, autoStart: false }).catch(() => undefined);
  await client?.shutdown();
  await emergencyCleanup(stateDir, containerNames, daemonPid);
}
