// The threads unpack.ts decodes layers on, with one started ahead of need: `dadi convert` starts it
// before it loads the converter's modules (~0.3 s of loading on the main thread), so the thread's
// own start (a Node environment and its modules, ~0.1 s of CPU) runs on the other core meanwhile
// instead of after it. A thread gets its job as its first message (UnpackJob), not as workerData.
// Kept free of the decoder's modules, so that starting one early costs the main thread nothing.

import { Worker } from 'node:worker_threads';

/** The worker entry beside this module: compiled .js in dist/, or the .ts sources through tsx. */
function workerEntry(): URL {
  const fromSource = import.meta.url.endsWith('.ts');
  return new URL(fromSource ? './unpack-worker.boot.mjs' : './unpack-worker.js', import.meta.url);
}

const spawn = () => new Worker(workerEntry(), { name: 'dadi-unpack' });

/** The thread started ahead, while it is alive and not taken. */
let spare: Worker | undefined;

/**
 * Start an unpack thread now, for the next unpackThread() to take. It does not keep the process
 * alive, and one that fails to start is forgotten (the next taker starts its own and sees why).
 */
export function prestartUnpackThread(): void {
  if (spare) return;
  const w = spawn();
  const forget = () => {
    if (spare === w) spare = undefined;
  };
  w.on('error', forget);
  w.on('exit', forget);
  w.unref();
  spare = w;
}

/** An unpack thread waiting for its job: the one started ahead, else a new one. */
export function unpackThread(): Worker {
  const w = spare ?? spawn();
  spare = undefined;
  w.ref();
  return w;
}
