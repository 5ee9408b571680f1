// Child-process FUSE server for the export tests: serves an image file (loaded into a MemoryFile, or
// opened as a LocalFile) as <dir>/disk.img until "unmount" arrives on stdin or SIGTERM, then unmounts
// from this still-serving process and exits. Run with UV_THREADPOOL_SIZE set in its environment.
//
//   node --import tsx export-fuse-server.ts --image IMG --dir DIR [--rw [--not-durable]] [--memory [--dump OUT]] [--readers N]
//     [--delay-ms MS] [--target DIR  (mountBlockFile: FUSE in dirname(--dir), loop, ext4 on DIR)]
//     [--open-delay-ms MS | --open-fail]  (with --target: the file is handed over still opening)
// stdout: "ready <connection>\n" once mounted, then a JSON stats line at exit.

import { readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { type BlockFile, LocalFile, MemoryFile } from '../../src/blockfile/index.js';
import { FuseExport, mountBlockFile } from '../../src/export/index.js';

const { values } = parseArgs({
  options: {
    image: { type: 'string' },
    dir: { type: 'string' },
    rw: { type: 'boolean', default: false },
    'not-durable': { type: 'boolean', default: false },
    memory: { type: 'boolean', default: false },
    dump: { type: 'string' },
    readers: { type: 'string', default: '4' },
    'delay-ms': { type: 'string', default: '0' },
    target: { type: 'string' },
    'open-delay-ms': { type: 'string', default: '0' },
    'open-fail': { type: 'boolean', default: false },
  },
});

const image = values.image!;
const file: BlockFile & { flush?: () => Promise<void> } = values.memory
  ? new MemoryFile(new Uint8Array(await readFile(image)), `memory:${image}`)
  : await LocalFile.open(image, { writable: values.rw });

// --delay-ms: make every read slow (a remote-backed image model) so requests overlap in time.
const delay = Number(values['delay-ms']);
if (delay > 0) {
  const inner = file.read.bind(file);
  file.read = async (buf, offset) => {
    await new Promise((r) => setTimeout(r, delay));
    return inner(buf, offset);
  };
}

const log = (m: string) => process.stderr.write(`${m}\n`);
// --target T: the whole stack in this process (FUSE in dirname(--dir), loop, ext4 on T).
// --open-delay-ms / --open-fail: mountBlockFile gets the file as a promise (as the daemon opens a
// device's layers while its mount is being set up), settling after that long.
const openDelay = Number(values['open-delay-ms']);
const opening =
  openDelay > 0 || values['open-fail']
    ? new Promise<BlockFile>((res, rej) =>
        setTimeout(
          () => (values['open-fail'] ? rej(new Error('the layers could not be opened (test)')) : res(file)),
          openDelay,
        ),
      )
    : file;
const stack = values.target
  ? await mountBlockFile(opening, values.target, {
      stateDir: dirname(values.dir!),
      readOnly: !values.rw,
      durable: !values['not-durable'],
      readers: Number(values.readers),
      log,
    })
  : undefined;
const fx =
  stack?.fuse ??
  (await FuseExport.mount(file, values.dir!, {
    readOnly: !values.rw,
    durable: !values['not-durable'],
    readers: Number(values.readers),
    log,
  }));
process.stdout.write(`ready ${fx.connection}\n`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (stack) await stack.unmount();
  else await fx.unmount();
  if (values.dump && file instanceof MemoryFile) await writeFile(values.dump, file.bytes());
  await file.close();
  process.stdout.write(`${JSON.stringify(fx.stats)}\n`);
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.stdin.on('data', (d) => {
  if (d.toString().includes('unmount')) void stop();
});
// Aborted from outside: the loops end on ENODEV; leave the dead mount to the parent's cleanup.
fx.done.then(() => {
  if (!stopping) {
    process.stdout.write('aborted\n');
    void stop();
  }
});
