// The registry's storage held in memory for the runs (vmtouch -l): the benchmark drops this host's
// page cache before every run, and the registry runs on this host too, so without this every run
// would also find the registry cold and read its blobs from disk. The registry stands for a remote
// host, whose page cache this host's drop does not touch and which, serving the same blobs run after
// run, has them in memory: so does this one, for every contestant alike. Measured before this
// (cat, 1 Gbit/2 ms): each of dadi-trace's four first GETs took 42-50 ms under the start's load,
// against 15-18 ms for the same GETs from a cold disk on an idle machine and 6.5 ms from memory.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from './util.js';

export interface ResidentStorage {
  stop(): Promise<void>;
}

/**
 * Lock every file under `dir` in memory until stop(); resolves once all pages are locked
 * (vmtouch -w). Files added later are not locked: call it after the images are pushed.
 */
export async function keepResident(dir: string, workDir: string): Promise<ResidentStorage> {
  const pidFile = join(workDir, 'vmtouch.pid');
  await rm(pidFile, { force: true });
  // -d daemonizes once the pages are locked (-w): the command's exit means locked.
  const child: ChildProcess = spawn('vmtouch', ['-q', '-l', '-d', '-w', '-P', pidFile, dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-2000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vmtouch did not lock ${dir} within 120 s`)), 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`vmtouch -l ${dir} failed (${code}): ${stderr}`);
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`vmtouch wrote no pid to ${pidFile}`);
  log(`registry storage held in memory (vmtouch pid ${pid})`);
  return {
    async stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
      await rm(pidFile, { force: true });
    },
  };
}
