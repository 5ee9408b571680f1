// Benchmarks that serve FUSE in-process: the FUSE readers pin threadpool threads, and libuv sizes its
// pool once, before any JS runs. So the script re-runs itself with UV_THREADPOOL_SIZE set, and its
// exit code becomes this process's.

import { spawn } from 'node:child_process';

export async function runWithThreadpool(main: () => Promise<void>, size = 16): Promise<void> {
  if (process.env.UV_THREADPOOL_SIZE) return main();
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(size) },
  });
  process.exitCode = await new Promise<number>((res) => child.on('exit', (c) => res(c ?? 1)));
}
