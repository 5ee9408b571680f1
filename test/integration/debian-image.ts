// Build a real multi-layer Debian OCI image for acceptance tests, with debootstrap + umoci:
//   v1 base (debootstrap minbase) → v2 added packages → v3 deleted files → v4 an opaque directory.
// Cached in DADI_TEST_CACHE (default /var/tmp/dadi-test-cache) so reruns on one machine are fast.

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../cli.js';
import { missing, requireOrSkip } from '../require.js';

export const DEBIAN_TAGS = ['v1', 'v2', 'v3', 'v4'] as const;

/** True when this machine can build the image; otherwise skips (or, in CI, fails) the caller's tests. */
export function haveDebianTools(what: string): boolean {
  return requireOrSkip(
    what,
    missing({ root: true, tools: ['debootstrap', 'umoci', 'tar'], hint: 'apt-get install debootstrap umoci' }),
  );
}

async function sh(cmd: string, what: string): Promise<string> {
  const r = await run('sh', ['-c', cmd]);
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

async function mirror(): Promise<string> {
  const text = await readFile('/etc/apt/sources.list.d/debian.sources', 'utf8').catch(() => '');
  return /^URIs:\s*(\S+)/m.exec(text)?.[1] ?? 'http://deb.debian.org/debian';
}

const cacheDir = () => process.env.DADI_TEST_CACHE ?? '/var/tmp/dadi-test-cache';

/** A debootstrap minbase bookworm tree (built once, cached; ~30–50 s). */
export async function debianRootfs(): Promise<string> {
  if (process.env.DADI_DEBIAN_ROOTFS) return process.env.DADI_DEBIAN_ROOTFS;
  const rootfs = join(cacheDir(), 'debian-rootfs');
  if (existsSync(join(rootfs, '.dadi-complete'))) return rootfs;
  await mkdir(cacheDir(), { recursive: true });
  await rm(rootfs, { recursive: true, force: true });
  await sh(`debootstrap --variant=minbase bookworm '${rootfs}' '${await mirror()}'`, 'debootstrap');
  // The marker lives outside the tree's own files so that copies can exclude it.
  await writeFile(join(rootfs, '.dadi-complete'), '');
  return rootfs;
}

/**
 * The OCI layout directory holding tags v1..v4 (built once). The final image's config runs
 * `/bin/sh`. Returns the layout path.
 */
export async function debianLayout(): Promise<string> {
  const cache = cacheDir();
  const layout = join(cache, 'debian-oci');
  if (existsSync(join(layout, '.complete'))) return layout;
  await mkdir(cache, { recursive: true });
  const work = join(cache, 'debian-work');
  await rm(work, { recursive: true, force: true });
  await rm(layout, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const chroot = await debianRootfs();
    await sh(`umoci init --layout '${layout}' && umoci new --image '${layout}:v0'`, 'umoci init');
    // v1: the base system.
    const b1 = join(work, 'b1');
    await sh(
      `umoci unpack --image '${layout}:v0' '${b1}' && cp -a '${chroot}/.' '${b1}/rootfs/' && rm -f '${b1}/rootfs/.dadi-complete'`,
      'unpack v0',
    );
    await sh(`umoci repack --image '${layout}:v1' '${b1}'`, 'repack v1');
    // v2: packages added inside the image (apt in a chroot of the unpacked rootfs).
    const b2 = join(work, 'b2');
    await sh(`umoci unpack --image '${layout}:v1' '${b2}'`, 'unpack v1');
    await sh(
      `cp /etc/resolv.conf '${b2}/rootfs/etc/resolv.conf' && mount -t proc proc '${b2}/rootfs/proc' && ` +
        `(chroot '${b2}/rootfs' sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends procps less' ; rc=$?; umount '${b2}/rootfs/proc'; exit $rc) && ` +
        `rm -rf '${b2}/rootfs/var/lib/apt/lists/'* '${b2}/rootfs/var/cache/apt/'*.bin`,
      'apt-get install in the image',
    );
    await sh(`umoci repack --image '${layout}:v2' '${b2}'`, 'repack v2');
    // v3: files deleted (whiteouts), including a whole directory.
    const b3 = join(work, 'b3');
    await sh(`umoci unpack --image '${layout}:v2' '${b3}'`, 'unpack v2');
    await sh(
      `rm -rf '${b3}/rootfs/usr/share/doc/less' '${b3}/rootfs/etc/motd' '${b3}/rootfs/usr/bin/zdiff' '${b3}/rootfs/usr/share/man'`,
      'delete files',
    );
    await sh(`umoci repack --image '${layout}:v3' '${b3}'`, 'repack v3');
    // v4: an opaque directory (umoci writes only per-file whiteouts, so this layer is made by hand).
    const t4 = join(work, 'opaque');
    await mkdir(join(t4, 'etc/apt/apt.conf.d'), { recursive: true });
    await writeFile(join(t4, 'etc/apt/apt.conf.d/.wh..wh..opq'), '');
    await writeFile(join(t4, 'etc/apt/apt.conf.d/99dadi'), 'APT::Install-Recommends "false";\n');
    await sh(
      `tar --numeric-owner --owner=0 --group=0 --mtime=@1700000000 -C '${t4}' -cf '${work}/opaque.tar' etc && ` +
        `umoci raw add-layer --image '${layout}:v3' --tag v4 '${work}/opaque.tar'`,
      'opaque layer',
    );
    await sh(
      `umoci config --image '${layout}:v4' --config.cmd /bin/sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
      'umoci config',
    );
    await writeFile(join(layout, '.complete'), '');
    return layout;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
