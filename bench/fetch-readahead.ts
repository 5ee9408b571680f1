// What a cold container start fetches, by fetch and readahead settings: the converted Debian image is
// opened from a local registry with an empty block cache, mounted as `dadi run` mounts it (writable
// block layer, FUSE export, loop device, ext4), and a workload runs in a chroot of the mount.
// Measured per setting: registry bytes and range requests, bytes the kernel read from the FUSE
// device, and the time of mount and of the workload. The first setting is the baseline (the
// defaults before the precise-fetching change); the last is today's defaults.
//
// Workloads: `cat /etc/os-release` on Debian minbase (the test image, test/integration/debian-image.ts)
// and `python3 -c 'import json, http.server'` on Debian + python3 (the coldstart image, built by
// bench/coldstart/image.ts into $DADI_BENCH_DIR; skipped, and said so, when it is not built).
//
// Usage (root): node --import tsx bench/fetch-readahead.ts [runs=3] [only-setting-name...]

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockCache } from '../src/cache/cache.js';
import { mountBlockFile } from '../src/export/block-mount.js';
import { openImage } from '../src/image/open-image.js';
import { RegistryClient } from '../src/registry/client.js';
import { runDadi } from '../test/cli.js';
import { debianLayout } from '../test/integration/debian-image.js';
import { startRegistry } from '../test/integration/registry-harness.js';
import { type BenchRow, report } from './report.js';
import { runWithThreadpool } from './threadpool.js';

const KiB = 1024;
const MiB = 1 << 20;

interface Setting {
  name: string;
  refillSize: number;
  readahead: number;
  fuseReadAheadKb: number;
  /** undefined: the kernel's default for the loop device. */
  loopReadAheadKb?: number;
  /** The loop device reads the FUSE file with O_DIRECT (the default since the direct-I/O change); the older settings are buffered. */
  loopDirectIo?: boolean;
  ext4Options: string[];
}

/** Today's defaults: 16 KiB refills, 1 MiB cache readahead, loop direct I/O (the FUSE bdi readahead then does not apply). */
const TODAY = { refillSize: 16 * KiB, readahead: MiB, fuseReadAheadKb: 1024, loopDirectIo: true, ext4Options: [] };

const SETTINGS: Setting[] = [
  { name: 'before', refillSize: 256 * KiB, readahead: MiB, fuseReadAheadKb: 1024, ext4Options: [] },
  { name: 'fuse-ra-0', refillSize: 256 * KiB, readahead: MiB, fuseReadAheadKb: 0, ext4Options: [] },
  { name: 'refill-4k', refillSize: 4 * KiB, readahead: MiB, fuseReadAheadKb: 1024, ext4Options: [] },
  { name: 'refill-4k+fuse-ra-0', refillSize: 4 * KiB, readahead: MiB, fuseReadAheadKb: 0, ext4Options: [] },
  {
    name: 'refill-4k+fuse-ra-0+loop-ra-128',
    refillSize: 4 * KiB,
    readahead: MiB,
    fuseReadAheadKb: 0,
    loopReadAheadKb: 128,
    ext4Options: [],
  },
  {
    name: 'refill-4k+fuse-ra-0+loop-ra-32',
    refillSize: 4 * KiB,
    readahead: MiB,
    fuseReadAheadKb: 0,
    loopReadAheadKb: 32,
    ext4Options: [],
  },
  {
    name: 'refill-4k+fuse-ra-0+loop-ra-0',
    refillSize: 4 * KiB,
    readahead: MiB,
    fuseReadAheadKb: 0,
    loopReadAheadKb: 0,
    ext4Options: [],
  },
  {
    name: 'refill-4k+fuse-ra-0+loop-ra-128+noatime',
    refillSize: 4 * KiB,
    readahead: MiB,
    fuseReadAheadKb: 0,
    loopReadAheadKb: 128,
    ext4Options: ['noatime'],
  },
  { name: 'refill-16k', refillSize: 16 * KiB, readahead: MiB, fuseReadAheadKb: 1024, ext4Options: [] },
  { name: 'refill-64k', refillSize: 64 * KiB, readahead: MiB, fuseReadAheadKb: 1024, ext4Options: [] },
  { name: 'refill-16k+fuse-ra-256', refillSize: 16 * KiB, readahead: MiB, fuseReadAheadKb: 256, ext4Options: [] },
  { name: 'refill-16k+fuse-ra-128', refillSize: 16 * KiB, readahead: MiB, fuseReadAheadKb: 128, ext4Options: [] },
  { name: 'refill-4k+no-cache-ra', refillSize: 4 * KiB, readahead: 0, fuseReadAheadKb: 1024, ext4Options: [] },
  { name: 'refill-16k+no-cache-ra', refillSize: 16 * KiB, readahead: 0, fuseReadAheadKb: 1024, ext4Options: [] },
  { name: 'refill-4k+fuse-ra-256', refillSize: 4 * KiB, readahead: MiB, fuseReadAheadKb: 256, ext4Options: [] },
  {
    name: 'refill-4k+loop-ra-0',
    refillSize: 4 * KiB,
    readahead: MiB,
    fuseReadAheadKb: 1024,
    loopReadAheadKb: 0,
    ext4Options: [],
  },
  {
    name: 'refill-4k+no-cache-ra+fuse-ra-0+loop-ra-128',
    refillSize: 4 * KiB,
    readahead: 0,
    fuseReadAheadKb: 0,
    loopReadAheadKb: 128,
    ext4Options: [],
  },
  { name: 'buffered-loop', ...TODAY, loopDirectIo: false },
  { name: 'dio', ...TODAY },
  { name: 'dio+loop-ra-0', ...TODAY, loopReadAheadKb: 0 },
  { name: 'dio+loop-ra-32', ...TODAY, loopReadAheadKb: 32 },
  { name: 'dio+loop-ra-64', ...TODAY, loopReadAheadKb: 64 },
  { name: 'dio+loop-ra-256', ...TODAY, loopReadAheadKb: 256 },
  { name: 'dio+loop-ra-512', ...TODAY, loopReadAheadKb: 512 },
  { name: 'dio+refill-4k', ...TODAY, refillSize: 4 * KiB },
  { name: 'dio+refill-64k', ...TODAY, refillSize: 64 * KiB },
  { name: 'dio+no-cache-ra', ...TODAY, readahead: 0 },
];

interface Workload {
  name: string;
  image: string;
  argv: string[];
}

interface Sample {
  bytes: number;
  requests: number;
  deviceBytes: number;
  mountS: number;
  workS: number;
  readaheadBytes: number;
  readaheadRequests: number;
}

const runs = Number(process.argv[2] ?? 3);
const only = process.argv.slice(3);

await runWithThreadpool(main);

async function main(): Promise<void> {
  const root = await mkdtemp('/var/tmp/dadi-bench-fetch-');
  const reg = await startRegistry({ auth: 'none' });
  try {
    const workloads: Workload[] = [];
    const env = { DADI_CACHE_DIR: join(root, 'convert-cache'), DADI_STATE: join(root, 'state') };
    const minbase = `${reg.host}/debian/min:dadi`;
    await convert(`oci:${await debianLayout()}:v1`, minbase, env);
    workloads.push({ name: 'cat /etc/os-release (minbase)', image: minbase, argv: ['/bin/cat', '/etc/os-release'] });
    const appLayout = join(process.env.DADI_BENCH_DIR ?? '/var/tmp/dadi-bench', 'oci');
    if (existsSync(join(appLayout, '..', 'oci.done'))) {
      const app = `${reg.host}/debian/python:dadi`;
      await convert(`oci:${appLayout}:app`, app, env);
      workloads.push({
        name: "python3 -c 'import json, http.server'",
        image: app,
        argv: ['/usr/bin/python3', '-c', 'import json, http.server'],
      });
    } else console.error(`python3 workload skipped: no built image at ${appLayout} (bench/coldstart/image.ts)`);

    const rows: BenchRow[] = [];
    const settings = only.length ? SETTINGS.filter((s) => only.includes(s.name)) : SETTINGS;
    for (const w of workloads) {
      const samples = new Map<string, Sample[]>();
      // Settings alternate within each round, so drift in machine load spreads over all of them.
      for (let r = 0; r < runs; r++) {
        for (const s of settings) {
          const x = await coldStart(root, w, s);
          samples.set(s.name, [...(samples.get(s.name) ?? []), x]);
          console.error(
            `${w.name} | ${s.name} | run ${r + 1}: ${(x.bytes / 1e6).toFixed(2)} MB in ${x.requests} requests, ` +
              `(readahead ${(x.readaheadBytes / 1e6).toFixed(2)} MB in ${x.readaheadRequests}), ` +
              `device ${(x.deviceBytes / 1e6).toFixed(2)} MB, mount ${x.mountS.toFixed(3)} s, workload ${x.workS.toFixed(3)} s`,
          );
        }
      }
      const base = median(samples.get(settings[0]!.name)!);
      for (const s of settings) {
        const m = median(samples.get(s.name)!);
        const extra = {
          requests: m.requests,
          deviceMB: round(m.deviceBytes / 1e6),
          mountS: round(m.mountS),
          workloadS: round(m.workS),
          cacheReadaheadMB: round(m.readaheadBytes / 1e6),
          cacheReadaheadRequests: m.readaheadRequests,
          setting: s,
        };
        rows.push({
          case: `${w.name}: ${s.name}, registry MB`,
          unit: 'MB',
          value: round(m.bytes / 1e6),
          baseline: round(base.bytes / 1e6),
          baselineName: settings[0]!.name,
          extra,
        });
        rows.push({
          case: `${w.name}: ${s.name}, registry requests`,
          unit: 'requests',
          value: m.requests,
          baseline: base.requests,
          baselineName: settings[0]!.name,
        });
        rows.push({
          case: `${w.name}: ${s.name}, workload time`,
          unit: 's',
          value: round(m.workS),
          baseline: round(base.workS),
          baselineName: settings[0]!.name,
        });
      }
    }
    report(
      'fetch-readahead',
      `Cold start fetches by fetch/readahead setting (median of ${runs}, loopback registry)`,
      rows,
    );
  } finally {
    await reg.stop();
    await rm(root, { recursive: true, force: true });
  }
}

async function convert(from: string, to: string, env: NodeJS.ProcessEnv): Promise<void> {
  const r = await runDadi(['convert', '-q', from, to], { env });
  if (r.code !== 0) throw new Error(`dadi convert ${from} ${to} failed: ${r.stderr}`);
}

/** One cold start: fresh cache, open, mount, run the workload in a chroot, tear down. */
async function coldStart(root: string, w: Workload, s: Setting): Promise<Sample> {
  const dir = await mkdtemp(join(root, 'run-'));
  const cache = await BlockCache.open(join(dir, 'cache'), {
    refillSize: s.refillSize,
    readahead: s.readahead,
    diskFloor: 0,
  });
  const client = new RegistryClient({ insecure: true });
  const ctx = { client, cache, close: async () => {} };
  const mnt = join(dir, 'state', 'rootfs');
  await mkdir(mnt, { recursive: true });
  const t0 = performance.now();
  const img = await openImage(w.image, ctx, { writable: { data: join(dir, 'rw.data'), index: join(dir, 'rw.index') } });
  let mount: Awaited<ReturnType<typeof mountBlockFile>> | undefined;
  try {
    mount = await mountBlockFile(img.device as Parameters<typeof mountBlockFile>[0], mnt, {
      stateDir: join(dir, 'state'),
      readOnly: false,
      readAheadKb: s.fuseReadAheadKb,
      loopReadAheadKb: s.loopReadAheadKb,
      loopDirectIo: s.loopDirectIo ?? false,
      options: s.ext4Options,
    });
    const t1 = performance.now();
    const code = await new Promise<number>((res, rej) => {
      const p = spawn('chroot', [mnt, ...w.argv], { stdio: ['ignore', 'ignore', 'inherit'] });
      p.on('error', rej);
      p.on('exit', (c) => res(c ?? 1));
    });
    const t2 = performance.now();
    if (code !== 0) throw new Error(`${w.name}: exit ${code}`);
    const st = img.stats();
    return {
      bytes: st.bytesFetched,
      requests: st.requests,
      deviceBytes: mount.fuse.stats.bytesRead,
      mountS: (t1 - t0) / 1000,
      workS: (t2 - t1) / 1000,
      readaheadBytes: cache.counters.readaheadBytes,
      readaheadRequests: cache.counters.readaheadFetches,
    };
  } finally {
    await mount?.unmount().catch((e) => console.error(`unmount: ${(e as Error).message}`));
    await img.close();
    await cache.close();
    await client.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function median(xs: Sample[]): Sample {
  const pick = (f: (x: Sample) => number) => {
    const v = xs.map(f).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)]!;
  };
  return {
    bytes: pick((x) => x.bytes),
    requests: pick((x) => x.requests),
    deviceBytes: pick((x) => x.deviceBytes),
    mountS: pick((x) => x.mountS),
    workS: pick((x) => x.workS),
    readaheadBytes: pick((x) => x.readaheadBytes),
    readaheadRequests: pick((x) => x.readaheadRequests),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
