// OCI runtime bundles for runc: config.json from an OCI image config (Entrypoint, Cmd, Env,
// WorkingDir, User resolved against the rootfs's /etc/passwd and /etc/group) plus run options,
// with docker-like defaults: pid/ipc/uts/mount/network namespaces (the network one empty: loopback
// only), the standard /proc /dev /sys mounts, docker's default capabilities, masked paths, rlimits,
// no terminal. Not the runner (runc.ts) and not the rootfs (container.ts mounts it).
//
// @example
//   const spec = await buildSpec({ rootfs: '/run/dadi/containers/c1/rootfs', image: config.config, cmd: ['sh'] });
//   await writeBundle('/run/dadi/containers/c1/bundle', spec);

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { DadiError } from '../errors.js';
import { glibcDataFiles } from '../prefetch/glibc-files.js';
import { MAX_LAUNCH_ARG_LENGTH, MAX_LAUNCH_ARGS } from './protocol.js';

/** The `config` object of an OCI image config (the fields a runtime uses). */
export interface ImageRunConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  [extra: string]: unknown;
}

export interface BundleOptions {
  /** Absolute path of the (mounted) root filesystem. */
  rootfs: string;
  /** The image config's `config` object (what `docker inspect` calls Config). */
  image?: ImageRunConfig;
  /** Replaces the image's Cmd (the entrypoint stays), as `docker run IMAGE CMD...` does. */
  cmd?: string[];
  /** Replaces the image's Entrypoint (and then the image's Cmd is dropped unless `cmd` is given). */
  entrypoint?: string[];
  /** Extra `KEY=value` entries, overriding the image's. */
  env?: string[];
  /** Overrides the image's User (`name`, `uid`, `name:group`, `uid:gid`, …). */
  user?: string;
  /** Overrides the image's WorkingDir. */
  workingDir?: string;
  /** Default "dadi". */
  hostname?: string;
  /** Mount the rootfs read-only. */
  readonlyRootfs?: boolean;
  /** cgroup path for runc (e.g. "/dadi/NAME"); none → runc picks one. */
  cgroupsPath?: string;
  /**
   * Default RLIMIT_NOFILE 1024/1024 (runc's default spec): the container's init sets them after
   * dropping CAP_SYS_RESOURCE, so they cannot exceed this process's hard limits.
   */
  rlimits?: { type: string; hard: number; soft: number }[];
  /** Extra mounts appended after the defaults. */
  mounts?: OciMount[];
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
  username?: string;
}

/** The subset of the OCI runtime spec we write (runtime-spec 1.0). */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: OciUser;
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string }[];
    cgroupsPath?: string;
    resources: { devices: { allow: boolean; access: string }[] };
    maskedPaths: string[];
    readonlyPaths: string[];
  };
  [extra: string]: unknown;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const DEFAULT_RLIMITS = [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }];

const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];

const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The default mounts: /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys (ro), cgroups (ro). */
export function defaultMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
  ];
}

/** Entrypoint + Cmd with overrides, as docker combines them. */
export function resolveArgs(image: ImageRunConfig | undefined, cmd?: string[], entrypoint?: string[]): string[] {
  const ep = entrypoint ?? image?.Entrypoint ?? [];
  const c = cmd ?? (entrypoint ? [] : (image?.Cmd ?? []));
  const args = [...ep, ...c];
  if (args.length === 0)
    throw new DadiError('EINVAL', 'no command: the image has no Entrypoint or Cmd and none was given');
  return args;
}

/**
 * The paths a start of this container reads first, for the daemon to fetch while it mounts: the
 * command's candidates (itself, or on the PATH the container gets, in order: the first found runs),
 * the files buildSpec reads and the data files glibc reads under the container's environment
 * (its locale, gconv cache, /etc/localtime: glibc-files.ts), and the command's first arguments
 * (a python command's imports). Undefined when the command cannot be resolved (no command given).
 */
export function launchFiles(
  opts: Pick<BundleOptions, 'image' | 'cmd' | 'entrypoint' | 'env' | 'workingDir'>,
): { files: string[]; exec: string[]; args: string[] } | undefined {
  let args: string[];
  try {
    args = resolveArgs(opts.image, opts.cmd, opts.entrypoint);
  } catch {
    return undefined;
  }
  const exe = args[0]!;
  const env = mergeEnv([`PATH=${DEFAULT_PATH}`], opts.image?.Env, opts.env);
  const path = env.find((e) => e.startsWith('PATH='))!.slice('PATH='.length);
  const cwd = opts.workingDir || opts.image?.WorkingDir || '/';
  const exec = exe.includes('/')
    ? [posix.resolve(cwd.startsWith('/') ? cwd : '/', exe)]
    : path
        .split(':')
        .filter((d) => d.startsWith('/'))
        .map((d) => posix.join(d, exe));
  return {
    files: ['/etc/passwd', '/etc/group', ...glibcDataFiles(env)],
    exec: exec.slice(0, 32),
    args: launchArgs(args.slice(1)),
  };
}

/** The command's first arguments, within the launch request's bounds (a longer one ends the list). */
function launchArgs(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args.slice(0, MAX_LAUNCH_ARGS)) {
    if (a.length > MAX_LAUNCH_ARG_LENGTH) break;
    out.push(a);
  }
  return out;
}

/** Merge KEY=value lists; later entries win, order of first appearance kept. */
export function mergeEnv(...lists: (string[] | null | undefined)[]): string[] {
  const m = new Map<string, string>();
  for (const list of lists) {
    for (const e of list ?? []) {
      const eq = e.indexOf('=');
      const key = eq < 0 ? e : e.slice(0, eq);
      m.set(key, e);
    }
  }
  return [...m.values()];
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

async function readTable(rootfs: string, file: string): Promise<string[][]> {
  // Resolve inside the rootfs only (no symlink walking out of it): a plain join is enough for /etc.
  const text = await readFile(join(rootfs, file), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

export function parsePasswd(rows: string[][]): PasswdEntry[] {
  return rows
    .filter((f) => f.length >= 6)
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }))
    .filter((e) => Number.isInteger(e.uid) && Number.isInteger(e.gid));
}

export function parseGroup(rows: string[][]): GroupEntry[] {
  return rows
    .filter((f) => f.length >= 3)
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }))
    .filter((e) => Number.isInteger(e.gid));
}

const isNum = (s: string) => /^\d+$/.test(s);

/**
 * Resolve a docker-style user spec against the rootfs's /etc/passwd and /etc/group: `''` (root),
 * `name`, `uid`, `name:group`, `uid:gid`, `name:gid`, `uid:group`. Supplementary groups come from
 * /etc/group membership when the user is known by name. Also returns the home directory.
 */
export async function resolveUser(rootfs: string, spec: string | undefined): Promise<OciUser & { home: string }> {
  // Both at once: on a lazily fetched rootfs each read may wait for the registry.
  const [passwdRows, groupRows] = await Promise.all([readTable(rootfs, 'etc/passwd'), readTable(rootfs, 'etc/group')]);
  const passwd = parsePasswd(passwdRows);
  const groups = parseGroup(groupRows);
  const [u = '', g] = (spec ?? '').split(':', 2) as [string, string | undefined];
  let uid = 0;
  let gid = 0;
  let home = '/';
  let username: string | undefined;
  if (u === '') {
    const root = passwd.find((p) => p.uid === 0);
    username = root?.name ?? 'root';
    home = root?.home ?? '/root';
  } else if (isNum(u)) {
    uid = Number(u);
    const p = passwd.find((x) => x.uid === uid);
    gid = p?.gid ?? 0;
    home = p?.home ?? '/';
    username = p?.name;
  } else {
    const p = passwd.find((x) => x.name === u);
    if (!p) throw new DadiError('ENOTFOUND', `user ${JSON.stringify(u)}: no such user in ${rootfs}/etc/passwd`);
    uid = p.uid;
    gid = p.gid;
    home = p.home;
    username = p.name;
  }
  if (g !== undefined && g !== '') {
    if (isNum(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp) throw new DadiError('ENOTFOUND', `group ${JSON.stringify(g)}: no such group in ${rootfs}/etc/group`);
      gid = grp.gid;
    }
  }
  const additional =
    username !== undefined && g === undefined
      ? [...new Set(groups.filter((x) => x.members.includes(username!) && x.gid !== gid).map((x) => x.gid))]
      : [];
  return { uid, gid, ...(additional.length ? { additionalGids: additional } : {}), home };
}

/** Build the runtime spec (reads /etc/passwd and /etc/group from the rootfs). */
export async function buildSpec(opts: BundleOptions): Promise<OciSpec> {
  const image = opts.image ?? {};
  const args = resolveArgs(image, opts.cmd, opts.entrypoint);
  const { home, ...user } = await resolveUser(opts.rootfs, opts.user ?? image.User);
  const hostname = opts.hostname ?? 'dadi';
  let env = mergeEnv([`PATH=${DEFAULT_PATH}`], image.Env, [`HOSTNAME=${hostname}`], opts.env);
  if (!env.some((e) => e.startsWith('HOME='))) env = [...env, `HOME=${home}`];
  const cwd = opts.workingDir || image.WorkingDir || '/';
  if (!cwd.startsWith('/')) throw new DadiError('EINVAL', `working directory ${JSON.stringify(cwd)} is not absolute`);
  const caps = [...DEFAULT_CAPABILITIES];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user,
      args,
      env,
      cwd: posix.normalize(cwd),
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: opts.rlimits ?? DEFAULT_RLIMITS,
      noNewPrivileges: false,
    },
    root: { path: resolve(opts.rootfs), readonly: !!opts.readonlyRootfs },
    hostname,
    mounts: [...defaultMounts(), ...(opts.mounts ?? [])],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
      ...(opts.cgroupsPath ? { cgroupsPath: opts.cgroupsPath } : {}),
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/** Write `<dir>/config.json` (`dirMade`: the caller made `dir` already). */
export async function writeBundle(dir: string, spec: OciSpec, opts: { dirMade?: boolean } = {}): Promise<string> {
  if (!opts.dirMade) await mkdir(dir, { recursive: true });
  const path = join(dir, 'config.json');
  await writeFile(path, `${JSON.stringify(spec, null, 2)}\n`);
  return path;
}
