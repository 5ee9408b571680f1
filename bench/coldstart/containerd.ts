// The containerd side of the cold-start benchmark: a private containerd 1.6 (Debian) with the stargz
// snapshotter (`containerd-stargz-grpc`, built by ../shared/peers/stargz/build.sh) as a proxy
// plugin, in the host-under-test network namespace. Every run starts both daemons on empty state
// before the clock; `stop()` ends them by PID and lazily unmounts what they left, deepest first.
// eStargz images are made once with `ctr-remote image convert --estargz --oci` and pushed; the
// optimized eStargz images (one per workload) with `ctr-remote image optimize --oci`, which runs the
// workload once and puts the files it read first, behind a landmark the snapshotter prefetches.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { containerdConfigLines, stopChild } from '../../test/integration/containerd-harness.js';
import { inNetns, log, sh, sleep } from './util.js';

const STARGZ_BIN = process.env.STARGZ_BIN ?? '/usr/local/bin/containerd-stargz-grpc';
const BUILD_SH = resolve(fileURLToPath(import.meta.url), '../../../../shared/peers/stargz/build.sh');

/** Install containerd, ctr-remote and the stargz snapshotter when missing (apt + the peer's build.sh). */
export async function ensureStargz(): Promise<void> {
  const has = async (t: string) => (await sh('sh', ['-c', `command -v ${t}`], { allowFail: true })).code === 0;
  if (!(await has('containerd')) || !(await has('ctr-remote'))) {
    log('installing containerd and ctr-remote (apt-get install containerd stargz-snapshotter)');
    await sh('apt-get', ['update', '-qq']);
    await sh('apt-get', ['install', '-y', '-qq', 'containerd', 'stargz-snapshotter'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  if (!existsSync(STARGZ_BIN)) {
    if (!existsSync(BUILD_SH)) throw new Error(`${STARGZ_BIN} is missing and ${BUILD_SH} is not there to build it`);
    log(`building containerd-stargz-grpc with ${BUILD_SH} (about 30 s after apt)`);
    await sh('bash', [BUILD_SH]);
  }
}

export class PrivateContainerd {
  readonly sock: string;
  private readonly sgzSock: string;
  private procs: ChildProcess[] = [];

  constructor(
    private readonly dir: string,
    private readonly netns: string,
    private readonly registry: string,
  ) {
    this.sock = join(dir, 'run/containerd.sock');
    this.sgzSock = join(dir, 'run/stargz.sock');
  }

  /** `ctr` (or `ctr-remote`) against this containerd, in the benchmark namespace `bench`. */
  ctr(args: string[], tool = 'ctr'): [string, string[]] {
    return inNetns(this.netns, tool, ['-a', this.sock, '-n', 'bench', ...args]);
  }

  async run(args: string[], tool = 'ctr'): Promise<string> {
    const [c, a] = this.ctr(args, tool);
    return (await sh(c, a)).stdout;
  }

  /** The dadi snapshotter's socket (when started with one). */
  get dadiSock(): string {
    return join(this.dir, 'run/dadi.sock');
  }

  /**
   * Start containerd and the stargz snapshotter on empty state (stopping any previous ones first);
   * with `dadiSnapshotter` (argv of `dadi snapshotter`, without --address/--root), the dadi
   * snapshotter too, registered as `dadi`.
   */
  async start(dadiSnapshotter?: string[]): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
    for (const d of ['root', 'state', 'opt', 'stargz', 'run', 'logs'])
      await mkdir(join(this.dir, d), { recursive: true });
    await writeFile(
      join(this.dir, 'containerd.toml'),
      containerdConfigLines(
        this.dir,
        this.sock,
        { stargz: this.sgzSock, ...(dadiSnapshotter ? { dadi: this.dadiSock } : {}) },
        // $DADI_BENCH_CONTAINERD_LOG_LEVEL=debug: each gRPC call in logs/containerd.log with its time (profiling).
        process.env.DADI_BENCH_CONTAINERD_LOG_LEVEL,
      ).join('\n'),
    );
    // No background fetch: the registry bytes are what the start needs, as for dadi.
    await writeFile(
      join(this.dir, 'stargz.toml'),
      [
        'no_background_fetch = true',
        `[[resolver.host."${this.registry}".mirrors]]`,
        `host = "${this.registry}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    const out = (name: string) => openSync(join(this.dir, 'logs', name), 'a');
    const start = (cmd: string, args: string[], logName: string) => {
      const [c, a] = inNetns(this.netns, cmd, args);
      const p = spawn(c, a, { stdio: ['ignore', out(logName), out(logName)] });
      this.procs.push(p);
      return p;
    };
    // Snapshotters first: containerd backs off for a while after a failed dial.
    if (dadiSnapshotter) {
      const [cmd, ...args] = dadiSnapshotter;
      const p = start(cmd!, [...args, '--address', this.dadiSock, '--root', join(this.dir, 'dadi')], 'dadi.log');
      for (let i = 0; !(await readFile(join(this.dir, 'logs/dadi.log'), 'utf8')).includes('serving'); i++) {
        if (i > 300 || p.exitCode !== null)
          throw new Error(`dadi snapshotter did not start (see ${this.dir}/logs/dadi.log)`);
        await sleep(100);
      }
    }
    start('containerd', ['--config', join(this.dir, 'containerd.toml')], 'containerd.log');
    start(
      STARGZ_BIN,
      ['-address', this.sgzSock, '-root', join(this.dir, 'stargz'), '-config', join(this.dir, 'stargz.toml')],
      'stargz.log',
    );
    for (let i = 0; ; i++) {
      if (existsSync(this.sock) && existsSync(this.sgzSock) && (!dadiSnapshotter || existsSync(this.dadiSock))) {
        const [c, a] = this.ctr(['version']);
        if ((await sh(c, a, { allowFail: true })).code === 0) break;
      }
      if (i > 300 || this.procs.some((p) => p.exitCode !== null)) {
        const logs = async (n: string) =>
          (await readFile(join(this.dir, 'logs', n), 'utf8').catch(() => '')).slice(-1000);
        throw new Error(
          `private containerd or a snapshotter did not start: ${await logs('containerd.log')} ${await logs('dadi.log')}`,
        );
      }
      await sleep(100);
    }
  }

  /** Stop the daemons (by PID) and unmount anything left under the folder, deepest first. */
  async stop(): Promise<void> {
    const procs = this.procs;
    this.procs = [];
    await Promise.all(procs.map(stopChild));
    const mounts = (await readFile('/proc/mounts', 'utf8'))
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${this.dir}/`))
      .sort()
      .reverse();
    for (const m of mounts) await sh('umount', ['-l', m], { allowFail: true });
  }
}

/**
 * Convert `oci` (gzip image in the registry) to eStargz as `esgz`, through a scratch containerd.
 * Skipped when `marker` records the same source digest (registry storage persists).
 */
export async function pushEstargz(
  ctd: PrivateContainerd,
  oci: string,
  esgz: string,
  digest: string,
  marker: string,
): Promise<void> {
  await convertAndPush(ctd, oci, esgz, digest, marker, ['image', 'convert', '--estargz', '--oci', oci, esgz]);
}

/**
 * `ctr-remote image optimize`: eStargz with the files `cmd` reads first (a recorded run of the
 * workload in a sandbox container), as `target`. Skipped like pushEstargz; the marker also keys on
 * the command, as the image depends on it.
 */
export async function pushEstargzOptimized(
  ctd: PrivateContainerd,
  oci: string,
  target: string,
  cmd: string[],
  digest: string,
  marker: string,
): Promise<void> {
  // --period bounds the recording; the workloads exit in well under a second.
  const args = ['image', 'optimize', '--oci', '--period', '5', '--args', JSON.stringify(cmd.slice(1))];
  const optimize = [...args, '--entrypoint', JSON.stringify(cmd.slice(0, 1)), oci, target];
  await convertAndPush(ctd, oci, target, `${digest} ${JSON.stringify(cmd)}`, marker, optimize);
}

async function convertAndPush(
  ctd: PrivateContainerd,
  oci: string,
  target: string,
  key: string,
  marker: string,
  convert: string[],
): Promise<void> {
  if (existsSync(marker) && (await readFile(marker, 'utf8')).trim() === key) return;
  log(`ctr-remote ${convert.join(' ')}`);
  await ctd.start();
  try {
    await ctd.run(['images', 'pull', '--plain-http', oci]);
    await ctd.run(convert, 'ctr-remote');
    await ctd.run(['images', 'push', '--plain-http', target]);
  } finally {
    await ctd.stop();
  }
  await writeFile(marker, `${key}\n`);
}
