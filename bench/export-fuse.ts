// How fast are the block exports? (root only)
// 1. FUSE + loop + ext4 vs the same ext4 image on a plain loop file in tmpfs (both memory-backed):
//    sequential MB/s (dd, page caches dropped first, so every byte crosses the export) and 4 KiB random
//    read IOPS (fio O_DIRECT, iodepth 16); plus the raw FUSE file (dd/fio O_DIRECT on disk.img).
// 2. NBD: nbdcopy from our server (MemoryFile) vs nbdcopy of the same raw file from tmpfs.
// The FUSE server runs in a child process with UV_THREADPOOL_SIZE=16 (see test/integration).
//
//   node --import tsx bench/export-fuse.ts [--size-mib 256]

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MemoryFile } from '../src/blockfile/index.js';
import {
  detachLoop,
  forceUnmountFuse,
  loopDevicesUnder,
  mountImage,
  NbdServer,
  runProgram,
  unmountFilesystem,
} from '../src/export/index.js';
import { type BenchRow, report } from './report.js';

const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '256' } } });
const sizeMiB = Number(values['size-mib']);
const root = dirname(fileURLToPath(import.meta.url));
const serverScript = join(root, '..', 'test', 'integration', 'export-fuse-server.ts');

async function sh(cmd: string): Promise<string> {
  const r = await runProgram('sh', ['-c', cmd], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

async function dropCaches(): Promise<void> {
  await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
}

/** dd read of `file`; returns MB/s (10^6 bytes). */
async function ddMBps(file: string, direct: boolean): Promise<number> {
  const t0 = performance.now();
  const out = await sh(`dd if=${file} of=/dev/null bs=1M ${direct ? 'iflag=direct' : ''} 2>&1`);
  const bytes = Number(/^(\d+) bytes/m.exec(out)?.[1] ?? 0);
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/** fio 4 KiB random reads, O_DIRECT; returns IOPS. */
async function fioIops(file: string, sizeBytes: number): Promise<number> {
  const out = await sh(
    `fio --name=r --filename=${file} --rw=randread --bs=4k --direct=1 --ioengine=libaio --iodepth=16 ` +
      `--size=${sizeBytes} --runtime=4 --time_based --readonly --output-format=json`,
  );
  const j = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { read: { iops: number } }[] };
  return j.jobs[0]!.read.iops;
}

async function startFuse(image: string, dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', serverScript, '--image', image, '--dir', dir, '--memory'], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '16' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((res, rej) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) res();
    });
    child.on('close', (c) => rej(new Error(`FUSE server exited ${c}`)));
  });
  return child;
}

const rows: BenchRow[] = [];
const work = await mkdtemp(join(tmpdir(), 'dadi-bench-fuse-'));
const shm = await mkdtemp('/dev/shm/dadi-bench-');
const fuseDir = join(work, 'm/a/fuse');
const mnt = join(work, 'm/a/rootfs');
const mntBase = join(work, 'm/b/rootfs');
let child: ChildProcess | undefined;
let nbd: NbdServer | undefined;
try {
  await mkdir(fuseDir, { recursive: true });
  await mkdir(mnt, { recursive: true });
  await mkdir(mntBase, { recursive: true });
  const src = join(work, 'src');
  await mkdir(src);
  const fileMiB = Math.floor(sizeMiB * 0.75);
  await sh(`head -c ${fileMiB << 20} /dev/urandom > ${src}/big.bin`);
  const image = join(shm, 'base.img');
  await sh(`mkfs.ext4 -q -F -b 4096 -d ${src} ${image} ${sizeMiB}M`);
  const fileBytes = fileMiB << 20;

  // Baseline: the same image on a plain loop file in tmpfs.
  const base = await mountImage(image, mntBase, { readOnly: true });
  await dropCaches();
  const baseSeq = await ddMBps(join(mntBase, 'big.bin'), false);
  await dropCaches();
  const baseIops = await fioIops(join(mntBase, 'big.bin'), fileBytes);
  await base.unmount();

  // Candidate: FUSE (memory-backed, child process) + loop + ext4.
  child = await startFuse(image, fuseDir);
  const disk = join(fuseDir, 'disk.img');
  const m = await mountImage(disk, mnt, { readOnly: true });
  await dropCaches();
  const seq = await ddMBps(join(mnt, 'big.bin'), false);
  const warmSeq = await ddMBps(join(mnt, 'big.bin'), false);
  await dropCaches();
  const iops = await fioIops(join(mnt, 'big.bin'), fileBytes);
  await m.unmount();
  const rawSeq = await ddMBps(disk, true);
  const rawIops = await fioIops(disk, sizeMiB << 20);
  child.stdin!.write('unmount\n');
  await new Promise((r) => child!.on('close', r));
  child = undefined;

  rows.push(
    {
      case: 'seq read through FUSE + loop + ext4 (caches dropped)',
      unit: 'MB/s',
      value: seq,
      baseline: baseSeq,
      baselineName: 'plain loop on tmpfs',
    },
    {
      case: '4 KiB random read IOPS through FUSE + loop + ext4 (O_DIRECT, qd16)',
      unit: 'IOPS',
      value: iops,
      baseline: baseIops,
      baselineName: 'plain loop on tmpfs',
    },
    {
      case: 'seq read through FUSE + loop + ext4, page cache warm',
      unit: 'MB/s',
      value: warmSeq,
      baseline: baseSeq,
      baselineName: 'plain loop on tmpfs (cold)',
    },
    { case: 'FUSE disk.img direct 1 MiB reads (dd iflag=direct)', unit: 'MB/s', value: rawSeq },
    { case: 'FUSE disk.img 4 KiB random O_DIRECT (qd16)', unit: 'IOPS', value: rawIops },
  );

  // NBD: nbdcopy to null: from our server vs from the raw file.
  const raw = join(shm, 'raw.img');
  const data = randomBytes(sizeMiB << 20);
  await writeFile(raw, data);
  nbd = new NbdServer([{ name: 'disk', file: new MemoryFile(new Uint8Array(await readFile(raw))) }]);
  const sock = join(work, 'nbd.sock');
  await nbd.listen({ socket: sock });
  const t = async (srcUri: string) => {
    const t0 = performance.now();
    await sh(`nbdcopy ${srcUri} null:`);
    return (sizeMiB << 20) / 1e6 / ((performance.now() - t0) / 1000);
  };
  const nbdRate = Math.max(await t(`'nbd+unix:///disk?socket=${sock}'`), await t(`'nbd+unix:///disk?socket=${sock}'`));
  const rawRate = Math.max(await t(raw), await t(raw));
  rows.push({
    case: 'nbdcopy from NBD export (MemoryFile)',
    unit: 'MB/s',
    value: nbdRate,
    baseline: rawRate,
    baselineName: 'nbdcopy of the raw file (tmpfs)',
  });
  report('export-fuse', 'Block exports: FUSE + loop vs plain loop; NBD vs raw file', rows);
} finally {
  await nbd?.close();
  await unmountFilesystem(mnt, { lazy: true }).catch(() => {});
  await unmountFilesystem(mntBase, { lazy: true }).catch(() => {});
  for (const dev of [...(await loopDevicesUnder(work)), ...(await loopDevicesUnder(shm))])
    await detachLoop(dev).catch(() => {});
  if (child && child.exitCode === null) {
    child.stdin!.write('unmount\n');
    await new Promise((r) => setTimeout(r, 2000));
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await forceUnmountFuse(fuseDir);
  await rm(work, { recursive: true, force: true });
  await rm(shm, { recursive: true, force: true });
}
