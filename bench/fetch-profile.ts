// Where a cold start's reads go, one run: every read the kernel makes of the mounted device (FUSE
// READ) and every registry range GET, timed, with what the device read hit in the filesystem
// (superblock, group descriptors, inode table, a directory, a file's data — from debugfs on the
// flattened image). Each registry GET is delayed by --rtt-ms, as a far registry would answer, so
// that misses that wait on each other show up as a chain: `serial` counts the GETs that started
// while no other was in flight (the dependent round trips of the start).
//
// Usage (root): node --import tsx bench/fetch-profile.ts [--workload cat|python] [--rtt-ms 20]
//               [--loop-ra-kb N] [--buffered-loop] [--prefetch-metadata]

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { WritableBlockFile } from '../src/blockfile/index.js';
import { BlockCache } from '../src/cache/cache.js';
import { mountBlockFile } from '../src/export/block-mount.js';
import { openImage } from '../src/image/open-image.js';
import { Ext4Prefetch } from '../src/prefetch/ext4-prefetch.js';
import { RegistryClient } from '../src/registry/client.js';
import { run, runDadi } from '../test/cli.js';
import { debianLayout } from '../test/integration/debian-image.js';
import { startRegistry } from '../test/integration/registry-harness.js';
import { runWithThreadpool } from './threadpool.js';

const { values } = parseArgs({
  options: {
    workload: { type: 'string', default: 'cat' },
    'rtt-ms': { type: 'string', default: '20' },
    'loop-ra-kb': { type: 'string' },
    'buffered-loop': { type: 'boolean', default: false },
    'prefetch-metadata': { type: 'boolean', default: false },
    /** With --prefetch-metadata: file readahead bound in KiB (0: off). */
    'file-readahead-kb': { type: 'string', default: '2048' },
    /** Mount read-only, without a writable layer (`dadi mount` without --rw). */
    ro: { type: 'boolean', default: false },
    'keep-dir': { type: 'string' },
    /** Extra ext4 mount options, comma-separated. */
    'ext4-options': { type: 'string' },
  },
});
const rttMs = Number(values['rtt-ms']);

await runWithThreadpool(main);

interface Event {
  kind: 'device' | 'registry';
  offset: number;
  length: number;
  start: number;
  end: number;
}

async function main(): Promise<void> {
  const root = values['keep-dir'] ?? (await mkdtemp('/var/tmp/dadi-bench-profile-'));
  await mkdir(root, { recursive: true });
  const reg = await startRegistry({ auth: 'none' });
  try {
    const env = { DADI_CACHE_DIR: join(root, 'convert-cache'), DADI_STATE: join(root, 'state') };
    let image: string;
    let argv: string[];
    // The coldstart benchmark's images (bench/coldstart/image.ts) when built; else the test image.
    const layout = join(process.env.DADI_BENCH_DIR ?? '/var/tmp/dadi-bench', 'oci');
    const benchImage = existsSync(join(layout, '..', 'oci-with-base.done'));
    if (values.workload === 'python') {
      if (!benchImage) throw new Error(`no built image at ${layout} (node --import tsx bench/coldstart/image.ts)`);
      image = `${reg.host}/debian/python:dadi`;
      await dadi(['convert', '-q', `oci:${layout}:app`, image], env);
      argv = ['/usr/bin/python3', '-c', 'import json, http.server'];
    } else {
      image = `${reg.host}/debian/min:dadi`;
      await dadi(['convert', '-q', benchImage ? `oci:${layout}:base` : `oci:${await debianLayout()}:v1`, image], env);
      argv = ['/bin/cat', '/etc/os-release'];
    }
    const raw = join(root, 'flat.img');
    await dadi(['image', 'export', '--no-cache', '--insecure', raw, image], env);

    const events: Event[] = [];
    const t0 = performance.now();
    const cache = await BlockCache.open(join(root, 'cache'), { diskFloor: 0 });
    const client = new RegistryClient({ insecure: true });
    const readBlob = client.readBlob.bind(client);
    client.readBlob = async (repo, digest, buf, offset, op) => {
      const e: Event = { kind: 'registry', offset, length: buf.length, start: performance.now() - t0, end: 0 };
      await new Promise((r) => setTimeout(r, rttMs));
      const n = await readBlob(repo, digest, buf, offset, op);
      e.end = performance.now() - t0;
      events.push(e);
      return n;
    };
    const ctx = { client, cache, close: async () => {} };
    const mnt = join(root, 'state', 'rootfs');
    await mkdir(mnt, { recursive: true });
    const img = await openImage(
      image,
      ctx,
      values.ro ? {} : { writable: { data: join(root, 'rw.data'), index: join(root, 'rw.index') } },
    );
    const prefetch = values['prefetch-metadata']
      ? new Ext4Prefetch(img.lower, {
          writableMount: !values.ro,
          maxFileBytes: Number(values['file-readahead-kb']) * 1024,
          log: console.error,
        })
      : undefined;
    const device = img.device as WritableBlockFile;
    const logged: WritableBlockFile = {
      name: device.name,
      size: device.size,
      read: async (buf, offset) => {
        prefetch?.willRead(offset, buf.length);
        const e: Event = { kind: 'device', offset, length: buf.length, start: performance.now() - t0, end: 0 };
        const n = await device.read(buf, offset);
        e.end = performance.now() - t0;
        events.push(e);
        return n;
      },
      write: (buf, offset) => device.write?.(buf, offset),
      discard: (offset, length) => device.discard(offset, length),
      flush: () => device.flush(),
      close: () => device.close(),
    };
    const tOpen = performance.now() - t0;
    const mount = await mountBlockFile(logged, mnt, {
      stateDir: join(root, 'state'),
      readOnly: values.ro,
      loopReadAheadKb: values['loop-ra-kb'] === undefined ? undefined : Number(values['loop-ra-kb']),
      loopDirectIo: !values['buffered-loop'],
      options: values['ext4-options']?.split(','),
    });
    const tMount = performance.now() - t0;
    const code = await new Promise<number>((res) => {
      const p = spawn('chroot', [mnt, ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
      p.on('exit', (c) => res(c ?? 1));
    });
    const tDone = performance.now() - t0;
    if (prefetch) console.log(`metadata prefetch: ${JSON.stringify(await prefetch.cancel())}`);
    await mount.unmount();
    await img.close();
    await cache.close();
    await client.close();
    if (code !== 0) throw new Error(`${argv.join(' ')}: exit ${code}`);
    await report(events, raw, { tOpen, tMount, tDone });
  } finally {
    await reg.stop();
    if (!values['keep-dir']) await rm(root, { recursive: true, force: true });
  }
}

async function dadi(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const r = await runDadi(args, { env });
  if (r.code !== 0) throw new Error(`dadi ${args.join(' ')} failed: ${r.stderr}`);
}

/** What each 4 KiB block of the flattened ext4 holds: group metadata by layout, file blocks by debugfs. */
async function classifier(raw: string): Promise<(block: number) => string> {
  const stats = (await run('dumpe2fs', [raw])).stdout;
  const ranges: { from: number; to: number; what: string }[] = [];
  let group = -1;
  for (const line of stats.split('\n')) {
    const g = /^Group (\d+):/.exec(line);
    if (g) group = Number(g[1]);
    const it = /Inode table at (\d+)-(\d+)/.exec(line);
    if (it) ranges.push({ from: Number(it[1]), to: Number(it[2]), what: `inode table g${group}` });
    const sb = /(?:Primary|Backup) superblock at (\d+), Group descriptors at (\d+)-(\d+)/.exec(line);
    if (sb) ranges.push({ from: Number(sb[1]), to: Number(sb[3]), what: `sb+gdt g${group}` });
    const bm = /Block bitmap at (\d+)/.exec(line);
    if (bm) ranges.push({ from: Number(bm[1]), to: Number(bm[1]), what: `block bitmap g${group}` });
    const im = /Inode bitmap at (\d+)/.exec(line);
    if (im) ranges.push({ from: Number(im[1]), to: Number(im[1]), what: `inode bitmap g${group}` });
  }
  return (block) => ranges.find((r) => block >= r.from && block <= r.to)?.what ?? '';
}

/** debugfs icheck + ncheck for the blocks not in group metadata: block → path. */
async function fileOwners(raw: string, blocks: number[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  if (!blocks.length) return out;
  const ic = (await run('debugfs', ['-R', `icheck ${blocks.join(' ')}`, raw])).stdout;
  const inoOf = new Map<number, number>();
  for (const line of ic.split('\n')) {
    const m = /^(\d+)\s+(\d+)/.exec(line);
    if (m) inoOf.set(Number(m[1]), Number(m[2]));
  }
  const inos = [...new Set(inoOf.values())];
  const paths = new Map<number, string>();
  if (inos.length) {
    const nc = (await run('debugfs', ['-R', `ncheck ${inos.join(' ')}`, raw])).stdout;
    for (const line of nc.split('\n')) {
      const m = /^(\d+)\s+(\S.*)$/.exec(line);
      if (m && !paths.has(Number(m[1]))) paths.set(Number(m[1]), m[2]!);
    }
  }
  for (const [b, ino] of inoOf) out.set(b, paths.get(ino) ?? `inode ${ino}`);
  return out;
}

async function report(events: Event[], raw: string, t: { tOpen: number; tMount: number; tDone: number }) {
  events.sort((a, b) => a.start - b.start);
  const dev = events.filter((e) => e.kind === 'device');
  const regs = events.filter((e) => e.kind === 'registry');
  const meta = await classifier(raw);
  const firstBlocks = dev.map((e) => Math.floor(e.offset / 4096));
  const owners = await fileOwners(
    raw,
    firstBlocks.filter((b) => !meta(b)),
  );
  // A registry GET is serial when none other was in flight as it started: a dependent round trip.
  let serial = 0;
  for (const r of regs) if (!regs.some((o) => o !== r && o.start < r.start && o.end > r.start)) serial++;
  const ms = (x: number) => x.toFixed(1).padStart(8);
  console.log(`open ${ms(t.tOpen)} ms, mounted ${ms(t.tMount)} ms, workload done ${ms(t.tDone)} ms`);
  console.log(
    `device reads: ${dev.length}, ${(dev.reduce((s, e) => s + e.length, 0) / 1e6).toFixed(2)} MB; ` +
      `registry GETs: ${regs.length}, ${(regs.reduce((s, e) => s + e.length, 0) / 1e6).toFixed(2)} MB, serial ${serial}`,
  );
  for (const e of events) {
    const b = Math.floor(e.offset / 4096);
    const what = e.kind === 'device' ? meta(b) || owners.get(b) || '?' : '';
    const tag = e.kind === 'device' ? 'DEV' : '    REG';
    console.log(
      `${ms(e.start)} ${ms(e.end - e.start)} ${tag} ${String(e.offset).padStart(12)} +${String(e.length).padEnd(8)} ${what}`,
    );
  }
}
